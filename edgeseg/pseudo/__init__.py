"""Pseudo-labels made outside the trainer (FreeSOLO's Free Mask, self-training rounds): each
writes a real COCO JSON with scores, and the next round trains on it like any dataset."""
