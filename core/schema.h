/* schema.h - the core's built-in section descriptors (see schema.c). */
#ifndef MLTK_SCHEMA_H
#define MLTK_SCHEMA_H
extern const char mltk_schema_run[];
extern const char mltk_schema_train[];
extern const char mltk_schema_log[];
extern const char mltk_schema_data[];
extern const char mltk_schema_layer[];
extern const char mltk_schema_loss[];
extern const char mltk_schema_optimizer[];
extern const char mltk_schema_schedule[];
extern const char mltk_schema_checkpoint[];
extern const char mltk_schema_model[];
extern const char mltk_schema_early_stopping[];
extern const char mltk_schema_metrics[];
extern const char mltk_schema_alert[];
extern const char mltk_schema_transform[];
#endif
