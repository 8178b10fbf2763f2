# tests for the graph family (see tests/check_graph.c)
