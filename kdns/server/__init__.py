"""The DNS front end: dispatch (bytes → chain → bytes), listeners, and the process runtime."""
