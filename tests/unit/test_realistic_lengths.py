"""The realistic-length stand-in model's calibration, on given token streams."""

import numpy as np

from qcraft_ray.devtools.realistic_lengths import first_hits


def test_first_trigger_ends_the_output_and_the_cap_holds():
    rank = np.ones(100)
    rank[[7, 9]] = 0.01  # tokens 7 and 9 trigger at p > 0.01
    seqs = [[1, 2, 7, 3], [9], [1, 2, 3, 4, 5, 6], [5] * 10]
    assert first_hits(seqs, rank, 0.5, cap=8) == [3, 1, 8, 8]
    assert first_hits(seqs, rank, 0.005, cap=8) == [8, 8, 8, 8]  # nothing triggers


def test_built_model_ends_its_outputs_after_a_few_tokens(tmp_path):
    """Build it (calibrated on 8 prompts), then generate with transformers from prompts
    it was not calibrated on: outputs end by themselves, at varied lengths."""
    import torch
    from transformers import AutoModelForCausalLM

    from qcraft_ray.config import ModelConfig
    from qcraft_ray.devtools.realistic_lengths import calibration_prompts
    from qcraft_ray.devtools.tiny_model import build_tiny_qwen3
    from qcraft_ray.tokenization import load_tokenizer

    path = build_tiny_qwen3(tmp_path / "m", realistic_lengths=True, calibration_prompts=8)
    assert '"calibration_prompts": 8' in (path / ".qcraft-tiny-model").read_text()
    tok = load_tokenizer(ModelConfig(name=str(path)))
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    eos = tok.convert_tokens_to_ids("<|im_end|>")
    lengths = []
    with torch.no_grad():
        for ids in calibration_prompts(tok, 20)[8:]:
            out = model.generate(torch.tensor([ids]), max_new_tokens=128, do_sample=False)
            new = out[0, len(ids):].tolist()
            lengths.append(new.index(eos) if eos in new else 128)
    assert len(set(lengths)) > 3 and 5 < sum(lengths) / len(lengths) < 60, lengths
    assert sum(n < 128 for n in lengths) >= 9  # nearly all end by themselves
