"""From images to cached arrays: the backbones, the engines that run them, the per-image cache, the split files."""
