# tests for the optim2 family (see tests/check_optim2.c)
