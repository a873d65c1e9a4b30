"""Example reward functions in the two conventions rlvr can call.

verl:  rlvr verify --verifier python:verifiers/python/examples/reward.py --input lines.jsonl
TRL:   rlvr verify --verifier python:verifiers/python/examples/reward.py:length_penalty ...
"""
import re


def compute_score(data_source, solution_str, ground_truth, extra_info=None):
    """verl's signature: 1.0 when the last number of the response equals the ground truth."""
    numbers = re.findall(r"-?\d+(?:\.\d+)?", solution_str)
    if not numbers:
        return {"score": 0.0, "reason": "no number"}
    return {"score": float(float(numbers[-1]) == float(ground_truth)), "extracted": numbers[-1]}


def length_penalty(prompts, completions, **kwargs):
    """TRL's signature: a batch of completions in, a list of floats out."""
    return [max(0.0, 1.0 - len(c) / 100.0) for c in completions]
