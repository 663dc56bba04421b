from hurtle.cli import main

main()
