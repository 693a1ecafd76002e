"""hf_reinforce: Dataset Reinforcement (Faghri et al., ICCV 2023) for HuggingFace datasets."""

__version__ = "0.1.0"
