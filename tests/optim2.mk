# tests for the optim2 family: optimizers (RMSprop, AdamW, LAMB), gradient
# clipping, per-layer lr_mult and freeze (tests/check_optim2.c), and the
# learning-rate schedules (tests/check_schedule.c).  Reference values come
# from PyTorch through the generators kept beside them.
if HAVE_CHECK
check_PROGRAMS += tests/check_optim2 tests/check_schedule
TESTS += tests/check_optim2 tests/check_schedule

tests_check_optim2_SOURCES = tests/check_optim2.c tests/optim2_ref.h
tests_check_optim2_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/core
tests_check_optim2_CFLAGS = $(TEST_CFLAGS)
tests_check_optim2_LDADD = $(TEST_LIBS)

tests_check_schedule_SOURCES = tests/check_schedule.c tests/schedule_ref.h
tests_check_schedule_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/core
tests_check_schedule_CFLAGS = $(TEST_CFLAGS)
tests_check_schedule_LDADD = $(TEST_LIBS)
endif
EXTRA_DIST += tests/gen_optim2_ref.py tests/gen_schedule_ref.py
