"""One broker contract suite, run against every broker (see conftest.BROKERS)."""
