"""The C replay's libFuzzer target (README.md): a driver embedding CPython and the harness it loads."""
