"""Sans-IO DNS protocol helpers: bytes in, bytes out, no sockets (in the spirit of h11)."""
