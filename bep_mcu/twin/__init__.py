"""The host twin: the generated C compiled through cffi, numpy-vs-C verification
and golden vectors."""
