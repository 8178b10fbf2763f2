/* schema.c - the core's own config sections, written as descriptors.
 *
 * The sections a training config may hold that are not plugins ([run],
 * [train], [log]) and the keys every plugin-backed section has besides
 * the plugin's own ([data], [layer.NAME], [loss], [optimizer],
 * [schedule]) are
 * described in the same INI descriptor format plugins use, so one
 * validator serves both and `mltk.ini(5)` documents them in one place.
 */
#include "schema.h"

const char mltk_schema_run[] =
    "[plugin]\nname = run\nsummary = how and where the run executes\n"
    "[param.seed]\ntype = int\nmin = 0\ndefault = 0\n"
    "doc = seed of every random stream (initialisation, shuffling); equal seeds give bit-identical cpu runs\n"
    "[param.backend]\ntype = list\ndefault = cpu\n"
    "doc = backends to try in order; the first that loads and probes OK is used\n"
    "[param.threads]\ntype = int\nmin = 0\nmax = 1024\ndefault = 0\n"
    "doc = host threads for the cpu backend; 0 uses every core\n";

const char mltk_schema_train[] =
    "[plugin]\nname = train\nsummary = the training loop\n"
    "[param.epochs]\ntype = int\nmin = 1\ndefault = 10\n"
    "doc = passes over the training set\n"
    "[param.batch_size]\ntype = int\nmin = 1\nmax = 1048576\ndefault = 32\n"
    "doc = samples per optimizer step\n"
    "[param.shuffle]\ntype = bool\ndefault = true\n"
    "doc = reshuffle the training set every epoch\n"
    "[param.clip_norm]\ntype = float\nmin = 0\ndefault = 0\n"
    "doc = clip gradients to this global L2 norm (as torch.nn.utils.clip_grad_norm_); 0 = off\n"
    "[param.clip_value]\ntype = float\nmin = 0\ndefault = 0\n"
    "doc = clamp every gradient to [-clip_value, clip_value], before clip_norm; 0 = off\n";

const char mltk_schema_log[] =
    "[plugin]\nname = log\nsummary = what the run reports\n"
    "[param.jsonl]\ntype = string\n"
    "doc = file receiving one JSON object per epoch\n"
    "[param.level]\ntype = enum\nchoices = error, warn, info, debug\ndefault = info\n"
    "doc = verbosity of log messages on stderr\n";

const char mltk_schema_data[] =
    "[plugin]\nname = data\nsummary = the data set (keys below plus the dataset plugin's)\n"
    "[param.type]\ntype = string\nrequired = true\n"
    "doc = dataset plugin, e.g. idx\n"
    "[param.train_limit]\ntype = int\nmin = 0\ndefault = 0\n"
    "doc = use only the first N training samples; 0 uses all\n"
    "[param.test_limit]\ntype = int\nmin = 0\ndefault = 0\n"
    "doc = use only the first N test samples; 0 uses all\n";

const char mltk_schema_layer[] =
    "[plugin]\nname = layer\nsummary = one layer of the model (keys below plus the layer plugin's)\n"
    "[param.type]\ntype = string\nrequired = true\n"
    "doc = layer plugin, e.g. dense\n"
    "[param.input]\ntype = list\n"
    "doc = names of the layers feeding this one (or 'data'); default: the previous layer\n"
    "[param.lr_mult]\ntype = float\nmin = 0\ndefault = 1\n"
    "doc = multiplies the learning rate (and decoupled weight decay) for this layer's parameters\n"
    "[param.freeze]\ntype = bool\ndefault = false\n"
    "doc = keep this layer's parameters (and running statistics) unchanged\n";

const char mltk_schema_loss[] =
    "[plugin]\nname = loss\nsummary = the training loss (keys below plus the loss plugin's)\n"
    "[param.type]\ntype = string\nrequired = true\n"
    "doc = loss plugin, e.g. cross_entropy\n";

const char mltk_schema_optimizer[] =
    "[plugin]\nname = optimizer\nsummary = the optimizer (keys below plus the optimizer plugin's)\n"
    "[param.type]\ntype = string\nrequired = true\n"
    "doc = optimizer plugin, e.g. adam\n";

const char mltk_schema_schedule[] =
    "[plugin]\nname = schedule\nsummary = the learning-rate schedule (keys below plus the schedule plugin's)\n"
    "[param.type]\ntype = string\ndefault = constant\n"
    "doc = schedule plugin: constant, step, multistep, exponential, cosine, reduce_on_plateau\n"
    "[param.warmup_steps]\ntype = int\nmin = 0\ndefault = 0\n"
    "doc = optimizer steps of linear warm-up, from warmup_start_factor * lr to the scheduled lr\n"
    "[param.warmup_epochs]\ntype = int\nmin = 0\ndefault = 0\n"
    "doc = the warm-up in epochs instead (converted to steps); not with warmup_steps\n"
    "[param.warmup_start_factor]\ntype = float\nmin = 0\nmax = 1\ndefault = 0.1\n"
    "doc = fraction of the rate at the first step of the warm-up, in (0, 1]\n"
    "[param.scale_lr]\ntype = enum\nchoices = none, linear\ndefault = none\n"
    "doc = linear: the optimizer's lr is per 256 samples and is multiplied by batch_size / 256\n";
