# safetensors: sources added to the core library (see core/local.mk)
libmltkcore_la_SOURCES += core/safetensors.h core/safetensors.c
