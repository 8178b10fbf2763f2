# tbevents: sources added to the core library (see core/local.mk)
# TensorBoard event files (TFRecord framing, hand-encoded Event protobufs)
libmltkcore_la_SOURCES += core/tbevents.h core/tbevents.c
