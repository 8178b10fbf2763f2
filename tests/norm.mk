# tests for the norm family (see tests/check_norm.c)
