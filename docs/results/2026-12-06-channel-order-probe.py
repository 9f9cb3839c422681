# Narrow slices of a full-width model with each block's internal channels reordered by weight magnitude
# (Once-for-all's channel sorting) against the order training left: SI-SDR (dB) on 20 validation mixtures.
import numpy as np
import torch

from adaslim_hf import AdaSlimModel
from adaslim_hf.evaluation import load_test_set
from adaslim_hf.metrics.si_sdr.si_sdr import scale_invariant_sdr

torch.set_num_threads(1)
rows = load_test_set("data/corpus-git-v1", split="validation", max_items=20)
items = [(torch.tensor(np.asarray(r["noisy"]["array"]), dtype=torch.float32), np.asarray(r["clean"]["array"]))
         for r in rows]


def reorder(block, order):  # the same function at full width; width w keeps order[:w]
    with torch.no_grad():
        if hasattr(block, "conv_tr"):  # decoder: the GLU's value and gate rows of conv_in, conv_tr's inputs
            value_and_gate = torch.cat([order, order + block.channels])
            for t in (block.conv_in.weight, block.conv_in.bias):
                t.copy_(t[value_and_gate])
            block.conv_tr.weight.copy_(block.conv_tr.weight[order])
        else:  # encoder: conv_in's outputs, conv_out's inputs
            for t in (block.conv_in.weight, block.conv_in.bias):
                t.copy_(t[order])
            block.conv_out.weight.copy_(block.conv_out.weight[:, order])


def outgoing_l1(block):
    w = block.conv_tr.weight if hasattr(block, "conv_tr") else block.conv_out.weight.transpose(0, 1)
    return w.detach().abs().sum(dim=(1, 2))


def incoming_l1(block):
    w = block.conv_in.weight.detach().abs().sum(dim=(1, 2))
    return w[: block.channels] + w[block.channels :] if hasattr(block, "conv_tr") else w


orders = {"as trained": None, "outgoing L1, largest first": (outgoing_l1, True),
          "incoming L1, largest first": (incoming_l1, True),
          "in x out, largest first": (lambda b: incoming_l1(b) * outgoing_l1(b), True),
          "outgoing L1, smallest first": (outgoing_l1, False)}
print("noisy input", round(np.mean([float(scale_invariant_sdr(n.numpy(), c)) for n, c in items]), 2))
for name, rule in orders.items():
    model = AdaSlimModel.from_pretrained("runs/cmp-static1-c/update910").eval()
    if rule is not None:
        for block in (*model.encoder, *model.decoder):
            reorder(block, torch.argsort(rule[0](block), descending=rule[1], stable=True))
    with torch.inference_mode():
        scores = {u: np.mean([float(scale_invariant_sdr(model(n[None], utilization=u).enhanced_values[0].numpy(), c))
                              for n, c in items]) for u in (0.125, 0.25, 0.5, 1.0)}
    print(name, {u: round(s, 2) for u, s in scores.items()}, flush=True)
