# tests for the conv family (see tests/check_conv.c)
