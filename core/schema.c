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
    "doc = host threads for the cpu backend; 0 uses every core\n"
    "[param.precision]\ntype = enum\nchoices = fp32, bf16, fp16\ndefault = fp32\n"
    "doc = dtype of the layers' matrix products; bf16: bf16 operands, f32 accumulation, f32 master weights, optimizer state, losses and norms; fp16 likewise (not on the cpu)\n"
    "[param.tf32]\ntype = bool\ndefault = false\n"
    "doc = GPU backends: allow TF32 tensor cores in f32 matrix products and convolutions; the cpu backend ignores it\n"
    "[param.dir]\ntype = string\n"
    "doc = run directory: config.ini, run.json (the run record), metrics.jsonl, metrics.csv, tb/, checkpoints/ and confusion.csv go there unless other keys name them\n";

const char mltk_schema_train[] =
    "[plugin]\nname = train\nsummary = the training loop\n"
    "[param.epochs]\ntype = int\nmin = 1\nmax = 1000000\ndefault = 10\n"
    "doc = passes over the training set\n"
    "[param.batch_size]\ntype = int\nmin = 1\nmax = 1048576\ndefault = 32\n"
    "doc = samples per optimizer step\n"
    "[param.shuffle]\ntype = bool\ndefault = true\n"
    "doc = reshuffle the training set every epoch\n"
    "[param.clip_norm]\ntype = float\nmin = 0\ndefault = 0\n"
    "doc = clip gradients to this global L2 norm (as torch.nn.utils.clip_grad_norm_); 0 = off\n"
    "[param.clip_value]\ntype = float\nmin = 0\ndefault = 0\n"
    "doc = clamp every gradient to [-clip_value, clip_value], before clip_norm; 0 = off\n"
    "[param.on_nan]\ntype = enum\nchoices = stop, skip_step, rollback\ndefault = stop\n"
    "doc = on a non-finite loss or gradient: stop (naming the first layer that made it), skip_step (drop the update), rollback (reload the last checkpoint, rate * nan_lr_factor)\n"
    "[param.nan_lr_factor]\ntype = float\nmin = 0\nmax = 1\ndefault = 0.5\n"
    "doc = rollback multiplies the learning rate by this factor\n"
    "[param.max_skips]\ntype = int\nmin = 0\ndefault = 10\n"
    "doc = skip_step and rollback give up and stop after this many non-finite steps\n"
    "[param.check_every]\ntype = int\nmin = 1\nmax = 100000\ndefault = 50\n"
    "doc = read losses and gradient checks back from the device every N steps and at epoch ends; 1 reads each step; N > 1 keeps a device copy of the state\n"
    "[param.spike_window]\ntype = int\nmin = 2\nmax = 1000000\ndefault = 100\n"
    "doc = steps of loss history for spike detection\n"
    "[param.spike_zscore]\ntype = float\nmin = 0\ndefault = 6\n"
    "doc = warn when a step's loss is this many standard deviations above the window's mean; 0 = off\n"
    "[param.loss_scale]\ntype = string\ndefault = auto\n"
    "doc = loss scaling: none, dynamic (skip an overflowing step and halve the scale), a number (static), or auto (dynamic under precision = fp16)\n"
    "[param.loss_scale_init]\ntype = float\nmin = 1e-30\nmax = 1e30\ndefault = 65536\n"
    "doc = the first scale of loss_scale = dynamic\n"
    "[param.loss_scale_growth_interval]\ntype = int\nmin = 1\nmax = 1000000000\ndefault = 2000\n"
    "doc = steps in a row without overflow after which dynamic loss scaling doubles the scale\n";

const char mltk_schema_log[] =
    "[plugin]\nname = log\nsummary = what the run reports\n"
    "[param.jsonl]\ntype = string\n"
    "doc = file receiving one JSON object per epoch\n"
    "[param.level]\ntype = enum\nchoices = error, warn, info, debug\ndefault = info\n"
    "doc = verbosity of log messages on stderr\n"
    "[param.csv]\ntype = string\n"
    "doc = file receiving one CSV row per epoch (header first)\n"
    "[param.tensorboard]\ntype = string\n"
    "doc = directory receiving TensorBoard event files\n"
    "[param.scalars_every]\ntype = int\nmin = 0\ndefault = 50\n"
    "doc = log the step's loss, rate and throughput to TensorBoard every N steps; 0 = per epoch only\n"
    "[param.histograms_every]\ntype = int\nmin = 0\ndefault = 0\n"
    "doc = log histograms of every parameter and gradient tensor every N steps; 0 = at the end of each epoch\n"
    "[param.progress]\ntype = enum\nchoices = auto, bar, lines, off\ndefault = auto\n"
    "doc = per-epoch progress: a live bar on a terminal, plain lines otherwise (auto)\n"
    "[param.progress_interval]\ntype = float\nmin = 0.05\ndefault = 10\n"
    "doc = seconds between progress lines (the bar redraws at most 10 times a second)\n";

const char mltk_schema_data[] =
    "[plugin]\nname = data\nsummary = the data set (keys below plus the dataset plugin's)\n"
    "[param.type]\ntype = string\nrequired = true\n"
    "doc = dataset plugin, e.g. idx\n"
    "[param.train_limit]\ntype = int\nmin = 0\ndefault = 0\n"
    "doc = use only the first N training samples; 0 uses all\n"
    "[param.test_limit]\ntype = int\nmin = 0\ndefault = 0\n"
    "doc = use only the first N test samples; 0 uses all\n"
    "[param.val_fraction]\ntype = float\nmin = 0\nmax = 0.9\ndefault = 0\n"
    "doc = hold out this fraction of the training split for the per-epoch validation (stratified by class, from the seed); the test split is then evaluated once at the end\n"
    "[param.balance]\ntype = enum\nchoices = none, oversample, weights\ndefault = none\n"
    "doc = class balance: oversample draws each class equally often; weights passes n / (C count_c) to the loss as class weights\n"
    "[param.standardize]\ntype = bool\ndefault = false\n"
    "doc = scale each input feature to mean 0 and standard deviation 1, with statistics from the training split (saved with the model)\n"
    "[param.mode]\ntype = enum\nchoices = auto, resident, stream\ndefault = auto\n"
    "doc = resident keeps the prepared split in backend memory; stream prepares batches with worker threads every epoch (needed by random transforms)\n"
    "[param.resident_max_mb]\ntype = int\nmin = 0\nmax = 1048576\ndefault = 4096\n"
    "doc = mode auto keeps a split resident when it has no random transforms and fits in this many MiB\n"
    "[param.workers]\ntype = int\nmin = 0\nmax = 256\ndefault = 2\n"
    "doc = threads preparing batches (0: the training thread prepares each batch when it needs it)\n"
    "[param.prefetch]\ntype = int\nmin = 1\nmax = 1024\ndefault = 4\n"
    "doc = batches prepared ahead of the step\n"
    "[param.drop_last]\ntype = bool\ndefault = false\n"
    "doc = drop the last training batch of an epoch when it is smaller than batch_size\n";

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
    "[param.warmup_steps]\ntype = int\nmin = 0\nmax = 1000000000\ndefault = 0\n"
    "doc = optimizer steps of linear warm-up, from warmup_start_factor * lr to the scheduled lr\n"
    "[param.warmup_epochs]\ntype = int\nmin = 0\nmax = 1000000\ndefault = 0\n"
    "doc = the warm-up in epochs instead (converted to steps); not with warmup_steps\n"
    "[param.warmup_start_factor]\ntype = float\nmin = 0\nmax = 1\ndefault = 0.1\n"
    "doc = fraction of the rate at the first step of the warm-up, in (0, 1]\n"
    "[param.scale_lr]\ntype = enum\nchoices = none, linear\ndefault = none\n"
    "doc = linear: the optimizer's lr is per 256 samples and is multiplied by batch_size / 256\n";

const char mltk_schema_checkpoint[] =
    "[plugin]\nname = checkpoint\nsummary = training checkpoints (safetensors), for exact resume\n"
    "[param.dir]\ntype = string\n"
    "doc = directory of the checkpoints; default checkpoints/ in the run directory\n"
    "[param.every_epochs]\ntype = int\nmin = 0\ndefault = 1\n"
    "doc = write a checkpoint after every N epochs; 0 = not by epoch\n"
    "[param.every_steps]\ntype = int\nmin = 0\ndefault = 0\n"
    "doc = write a checkpoint after every N optimizer steps; 0 = not by step\n"
    "[param.keep_last]\ntype = int\nmin = 1\ndefault = 3\n"
    "doc = how many of the newest checkpoints to keep\n"
    "[param.keep_best]\ntype = bool\ndefault = true\n"
    "doc = also keep best.safetensors, the checkpoint with the best monitored metric\n"
    "[param.monitor]\ntype = enum\nchoices = val_loss, val_acc, train_loss\ndefault = val_loss\n"
    "doc = metric that decides the best checkpoint\n"
    "[param.mode]\ntype = enum\nchoices = auto, min, max\ndefault = auto\n"
    "doc = whether lower or higher is better; auto maximises accuracy and minimises losses\n"
    "[param.on_signal]\ntype = bool\ndefault = true\n"
    "doc = on SIGINT or SIGTERM write a checkpoint at the current step, then exit\n";

const char mltk_schema_model[] =
    "[plugin]\nname = model\nsummary = weights in and out of the model\n"
    "[param.init_from]\ntype = string\n"
    "doc = safetensors file whose tensors replace the initial weights, matched by name (transfer learning)\n"
    "[param.strict]\ntype = bool\ndefault = true\n"
    "doc = with init_from, refuse a missing, unexpected or differently shaped tensor; false loads what matches and reports the rest\n"
    "[param.save]\ntype = string\n"
    "doc = write the final weights (parameters and running statistics) to this safetensors file\n";

const char mltk_schema_early_stopping[] =
    "[plugin]\nname = early_stopping\nsummary = stop when the monitored metric stops improving\n"
    "[param.monitor]\ntype = enum\nchoices = val_loss, val_acc, train_loss\ndefault = val_loss\n"
    "doc = metric to watch after every epoch\n"
    "[param.mode]\ntype = enum\nchoices = auto, min, max\ndefault = auto\n"
    "doc = whether lower or higher is better; auto maximises accuracy and minimises losses\n"
    "[param.patience]\ntype = int\nmin = 0\ndefault = 5\n"
    "doc = epochs without improvement before stopping\n"
    "[param.min_delta]\ntype = float\nmin = 0\ndefault = 0\n"
    "doc = an epoch improves only when it beats the best by more than this\n"
    "[param.restore_best]\ntype = bool\ndefault = true\n"
    "doc = when stopping early, go back to the weights of the best epoch\n";

const char mltk_schema_metrics[] =
    "[plugin]\nname = metrics\nsummary = what evaluation computes on the test split\n"
    "[param.list]\ntype = list\ndefault = accuracy\n"
    "doc = metrics after every epoch: accuracy, topK (e.g. top5), precision, recall, f1_macro, f1_weighted, confusion, mse, mae, r2\n"
    "[param.confusion_csv]\ntype = string\n"
    "doc = file receiving the final confusion matrix (default confusion.csv in the run directory)\n"
    "[param.class_names]\ntype = list\n"
    "doc = names of the classes, in label order, for printed tables and plots\n";

const char mltk_schema_alert[] =
    "[plugin]\nname = alert\nsummary = run a command when something happens to the run\n"
    "[param.command]\ntype = string\nrequired = true\n"
    "doc = shell command (sh -c); it gets MLTK_EVENT, MLTK_MESSAGE, MLTK_EPOCH, MLTK_STEP, MLTK_RUN_DIR and MLTK_CONFIG in its environment\n"
    "[param.on]\ntype = list\ndefault = nan, early_stop, finished, crashed\n"
    "doc = events that run it: nan, early_stop, finished, crashed, spike, checkpoint\n";

const char mltk_schema_transform[] =
    "[plugin]\nname = transform\nsummary = one transform of the samples (keys below plus the transform plugin's)\n"
    "[param.type]\ntype = string\nrequired = true\n"
    "doc = transform plugin, e.g. flip\n"
    "[param.splits]\ntype = enum\nchoices = auto, train, eval, all\ndefault = auto\n"
    "doc = the splits it applies to: auto = random transforms on the training split only, the others on every split; eval = validation and test\n";
