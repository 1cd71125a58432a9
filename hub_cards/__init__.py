"""Dataset and model card templates, rendered with huggingface_hub's card classes."""
