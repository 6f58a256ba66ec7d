"""Block-structured networks: building blocks, the teacher zoo, student candidates."""
from compactkd_jax.models.net import BlockNet, LayerSpec, register_layer
from compactkd_jax.models.zoo import MODELS, get_model
