"""The fixed sizes of BAIR data that every part assumes (torch-free, so config modules and ``--help`` can read them).

`bair_world.data.batch` re-exports them beside the `Batch` they describe.
"""

#: Action values per step: [dx, dy, grip column, z command column].
ACTION_DIM = 4
#: End-effector position values per step (x, y, z in metres).
POSITION_DIM = 3
#: The model's condition per step: action then position.
COND_DIM = ACTION_DIM + POSITION_DIM
#: Frame height and width (pixels).
IMAGE_SIZE = 64
#: Image channels (RGB): the data, the envs and the metrics all assume 3.
CHANNELS = 3
