"""The imperative shell that runs plans: daemon supervisor, plan runner, leg coroutines."""
