"""NVIDIA DALI, in one package: the training loader (loader.py: `DaliLoaders`), its graph (graph.py), the
Python plans of the clips (plan.py, with the geometry of draft.py; each augmentation step plans itself in
libs/dataset/transforms.py), and what to install when DALI is missing (available.py). Importing this package
or plan.py / draft.py / available.py needs no DALI; loader.py imports it when a loader is built.
The test-time frame decoder is libs/io/dali_decode.py (it reads videos and frame folders, not clips)."""
