"""C generation: the state-buffer plan, status codes, rendering the C, and the
compilers that build it (host and Arm)."""
