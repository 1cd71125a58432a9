"""fslabels: frame-importance pseudo-labels from multimodal LLMs (spatial, temporal, fused)."""
