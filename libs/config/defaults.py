"""Every configuration key with its default (the original STM-Cycle defaults) and what it does."""
from yacs.config import CfgNode

_C = CfgNode()

# ----------------------------------------------------------------- data
_C.data_root = "data"              # folder holding DAVIS16/, DAVIS17/, YouTube-VOS/, SYNTHETIC/, STATIC/ ...
_C.trainset = ["DAVIS17", "VOS"]    # training data sets (registered names), mixed by datafreq
_C.valset = "DAVIS17"              # data set run by test.py and by validation during training
_C.valsplit = "val"                # split of valset ('val' for DAVIS, mapped to 'valid' for YouTube-VOS)
_C.datafreq = [5, 1]               # how many times each training data set is repeated per epoch
_C.input_size = (240, 427)         # network input (H, W): frames are resized to fit and padded; test.py,
                                   # the demo, the app and the API take a train.py checkpoint's own size
                                   # when neither the --cfg file nor the options set one
_C.sampled_frames = 3              # frames per training clip
_C.max_skip = [5, 3]               # initial largest gap between sampled frames, per training data set
                                   # (1..max_skip_cap each)
_C.max_skip_increment = 5          # max_skip grows by this much every epochs_per_increment epochs (>= 0)
_C.max_skip_cap = 100              # largest value the max_skip curriculum reaches
_C.samples_per_video = 1           # clips sampled per video and epoch
_C.max_training_obj = 5            # at most this many objects are sampled per training clip
_C.data_backend = "PIL"            # 'PIL' or 'DALI': training data loader, and frame decoder of test.py and the demo
_C.transpose_portrait = True       # training clips taller than wide are transposed to landscape before
                                   # augmentation (the original); False keeps their orientation
_C.colour_jitter = "original"      # training contrast jitter: 'original' multiplies pixel values (contrast
                                   # around 0, unclamped, as the original); 'mid_grey' scales around mid
                                   # grey and clamps to the valid range

# ----------------------------------------------------------------- model
_C.keydim = 128                    # channels of memory/query keys
_C.valdim = 512                    # channels of memory/query values
_C.arch = "resnet50"               # encoder: resnet18 | resnet34 | resnet50 | resnet101
_C.backbone_weights = ""           # '' random init, 'imagenet' (torch hub cache), or a path to a ResNet state dict
_C.save_freq = 5                   # a frame joins the stored memory every save_freq frames
_C.max_memory_frames = 0           # bound on stored memory frames (0 = unbounded, as the original; the
                                   # demo on live input bounds it to 20 then, and says so)
_C.epochs_per_increment = 5        # max_skip grows every this many epochs
_C.split_k = 3                     # unused (accepted so original config files load; another value logs
                                   # one line "ignored: ...")

# ----------------------------------------------------------------- training
_C.epochs = 240
_C.train_batch = 1                 # clips per GPU (per process) and step
_C.learning_rate = 0.00001
_C.gamma = 0.1                     # learning rate factor at each milestone, in (0, 1]
_C.momentum = (0.9, 0.999)         # Adam betas; the first entry is SGD's momentum
_C.solver = "adam"                 # 'adam' or 'sgd'
_C.weight_decay = 5e-4
_C.iter_size = 4                   # gradient accumulation steps per optimizer step
_C.milestone = []                  # epochs at which the learning rate is multiplied by gamma
_C.loss = "both"                   # 'ce' (bootstrapped cross entropy), 'iou' or 'both'
_C.mode = "recurrent"              # memory of the forward pass: 'mask' | 'recurrent' | 'threshold';
                                   # 'recurrent' reproduces the released models (the original's loop
                                   # ignored this key and always memorised its own prediction)
_C.iou_threshold = 0.65            # 'threshold' mode: own prediction used when its IoU exceeds this (0..1)
_C.cycle_frames = "highest_object" # later frames whose backward-cycle loss counts: 'highest_object' those
                                   # whose truth shows the clip's highest object id (the original),
                                   # 'all_objects' only those showing every object
_C.alpha = 1.25                    # unused (as split_k)
_C.lambdas = [1.0, 0.4]            # unused (as split_k)
_C.amp = False                     # bf16 autocast (GPU; on a CPU only worth it with bf16 instructions)
_C.freeze_bn = True                # keep batch-norm statistics fixed while training (the original);
                                   # False learns them (useful from random init, e.g. the quickstart)
_C.seed = 0                        # seed of every random generator
_C.max_minutes = 0.0               # stop after this many minutes of training, saving a checkpoint as on
                                   # SIGTERM (resume auto continues); 0 = no limit
_C.keep_checkpoints = 0            # keep only the N newest checkpoint/epoch-NNNN.pth (latest.pth always
                                   # stays, so `resume auto` works); 0 = keep every epoch's checkpoint
_C.checkpoint_every_steps = 0      # also write checkpoint/latest.pth every N optimizer steps (0 = only at
                                   # the end of each epoch); a torchrun restart resumes from it
_C.max_bad_samples = 0.01          # unreadable training samples tolerated per epoch (each replaced by
                                   # another): < 1 a fraction of the epoch's clips, >= 1 a count
_C.max_nonfinite_steps = 20        # stop after this many consecutive optimizer steps skipped for a
                                   # non-finite loss or gradient (0 = stop at the first)
_C.fast_training = False           # training step reads the memory with scaled_dot_product_attention;
                                   # fused optimizer step

# ----------------------------------------------------------------- testing
_C.epoch_per_test = 1              # validate every this many epochs
_C.correction_rate = 150.0         # step size of the test-time gradient correction
_C.correction_momentum = 0.9       # unused (as split_k)
_C.loop = 10                       # correction iterations every save_freq frames (0 = off)
_C.fast_inference = False          # frozen copy of the model (batch norm folded, channels-last),
                                   # preallocated memory bank, SDPA memory read, a correction that
                                   # differentiates only the mask (same masks; benchmarks/README.md)
_C.compile = False                 # with fast_inference True: the per-frame segment and correction steps
                                   # compiled by torch.compile (fixed shapes, CUDA graphs on a GPU); the
                                   # first frames of a video and each doubling of its memory compile
                                   # (seconds to minutes); needs fast_inference True
_C.batch_videos = 1                # test.py and validation: videos segmented together, in lockstep (one
                                   # batch through the network per step; when a video ends the next takes
                                   # its slot); 1 = one video at a time; more than the set's videos: the
                                   # set's size. Same masks up to rounding; more GPU memory, more frames/s
_C.runtime = "torch"               # what runs the network's steps at inference: 'torch' (PyTorch, eager or
                                   # compiled) or 'onnxruntime' (the ONNX graphs of onnx_dir, written by
                                   # export.py; needs loop 0 and the max_memory_frames they were exported for)
_C.onnx_dir = ""                   # folder of ONNX graphs + manifest.json: export.py writes it, runtime
                                   # onnxruntime reads it
_C.onnx_provider = "cpu"           # runtime onnxruntime: 'cpu', 'cuda' (CUDAExecutionProvider) or 'tensorrt'
                                   # (TensorrtExecutionProvider); cuda/tensorrt need onnxruntime-gpu

# ----------------------------------------------------------------- paths and devices
_C.checkpoint = "ckpt"             # folder of training checkpoints
_C.initial = ""                    # weights to start from (training) or to test (test.py, demo)
_C.resume = ""                     # checkpoint to resume training from, or 'auto' (<checkpoint>/latest.pth)
_C.video_path = ""                 # demo: folder of frames, a video file, a camera index (0) or a stream
                                   # URL (rtsp://, http://, ...: live input)
_C.mask_path = ""                  # demo: mask PNG of the first frame (of the first captured frame when live;
                                   # resized, nearest neighbour, when its size differs from the camera's)
_C.live = False                    # demo: read video_path (a video file) as a live stream paced at its frame
                                   # rate, dropping frames the segmenter cannot keep up with; camera
                                   # indexes (video_path 0) and stream URLs (rtsp://, http://) are always live
_C.show = False                    # demo, live input: show each result in a window (needs a display and
                                   # OpenCV with GUI support; q or Esc stops, as Ctrl-C does)
_C.write_results = True            # demo, live input: write masks, overlays and overlay.mp4 (False: only
                                   # show them; needs show True)
_C.gpu_id = 0                      # CUDA device index (>= 0); -1 runs on the CPU
_C.workers = 1                     # data loader (and scoring) worker processes; at most one per CPU core
_C.progress_every_s = 30.0         # train.py: seconds between progress lines when output is not a terminal
_C.save_indexed_format = "index"   # 'index' | 'segmentation' | 'heatmap' | 'mask'
_C.output_dir = "output"           # where test.py and the demo write their results

# ----------------------------------------------------------------- browser app (demo/app.py)
_C.host = "127.0.0.1"              # address the app's web server listens on (0.0.0.0: every interface)
_C.port = 8000                     # TCP port of the app's web server
_C.max_upload_mb = 500             # largest video or zip of frames the app accepts as an upload, in MB
_C.allowed_dir = ""                # server folder whose videos the app may open by path ('' = none:
                                   # only uploads); paths outside it are refused
_C.allowed_hosts = []              # more Host names the app answers to (e.g. a DNS name of this machine);
                                   # loopback names and `host` itself always are, other Hosts get 403
_C.token = ""                      # access token the app asks for when `host` is not loopback ('' = a
                                   # random one, printed in the URL at start); unused on loopback
_C.max_frames = 10000              # longest video the app opens, in frames
_C.max_pixels = 8294400            # largest frame the app opens, in pixels (height x width; 3840x2160)
_C.max_sessions = 8                # sessions (browser tabs) held in memory; the least recently used idle
                                   # one is dropped (its files stay, reopening its URL restores it)
_C.session_idle_minutes = 60.0     # a session no page asked about for this long is dropped from memory

# ----------------------------------------------------------------- distributed (torchrun sets the rest)
_C.multi_gpu_ids = [0, 1, 2, 3]    # unused (as split_k): torchrun decides the devices
_C.backend = "nccl"                # process group backend on GPUs: nccl | gloo | mpi | ucc ('gloo' is
                                   # used on the CPU)
_C.init_method = "env://"          # process group initialisation


def defaults() -> CfgNode:
    """A fresh, mutable copy of the default configuration."""
    return _C.clone()
