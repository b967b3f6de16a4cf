"""The six stages of a chat turn: input → preprocess → model → output → postprocess → final."""
