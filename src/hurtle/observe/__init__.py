"""What a deployment is doing, seen from outside its workers: the worker registry."""
