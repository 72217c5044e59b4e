"""A deliberately plain re-statement of the original STM-Cycle test loop, used as an oracle.

It uses the network's layers directly, one object at a time, with the original's list-of-tensors
memory and its order of updates, so that the engine's batched, cached implementation can be
compared with it.
"""
import math

import torch
import torch.nn.functional as F


def _trunk(enc, x):
    x = enc.maxpool(enc.relu(enc.bn1(x)))
    r2 = enc.res2(x)
    r3 = enc.res3(r2)
    return enc.res4(r3), r3, r2


def _memorize(net, frame, mask, num_objects):
    keys, values = [], []
    for o in range(1, num_objects + 1):
        m = mask[:, o:o + 1]
        bg = torch.clamp(1.0 - m, 0.0, 1.0)
        enc = net.Encoder_M
        r4, _, _ = _trunk(enc, enc.conv1(frame) + enc.conv1_m(m) + enc.conv1_bg(bg))
        k, v = net.KV_M_r4.Key(r4), net.KV_M_r4.Value(r4)
        keys.append(k.permute(0, 2, 3, 1).reshape(1, -1, k.shape[1]))
        values.append(v.permute(0, 2, 3, 1).reshape(1, -1, v.shape[1]))
    return torch.cat(keys), torch.cat(values)          # [K, N, C]


def _segment(net, frame, keys, values, num_objects):
    enc = net.Encoder_Q
    r4, r3, r2 = _trunk(enc, enc.conv1(frame))
    qk, qv = net.KV_Q_r4.Key(r4), net.KV_Q_r4.Value(r4)
    _, C, h, w = qk.shape
    ps = []
    for o in range(num_objects):
        p = torch.softmax(torch.mm(keys[o], qk.view(C, h * w)) / math.sqrt(C), dim=0)  # [N, hw]
        read = torch.mm(values[o].t(), p).view(1, -1, h, w)
        x = torch.cat([read, qv], dim=1)
        d = net.Decoder
        m4 = d.ResMM(d.convFM(x))
        m3 = d.RF3(r3, m4)
        m2 = d.RF2(r2, m3)
        logit = F.interpolate(d.pred2(F.relu(m2)), size=frame.shape[2:], mode="bilinear", align_corners=False)
        ps.append(torch.softmax(logit, dim=1)[0, 1])
    ps = torch.stack(ps)
    em = torch.cat([torch.prod(1 - ps, dim=0, keepdim=True), ps]).clamp(1e-7, 1 - 1e-7)
    return torch.log(em / (1 - em)).unsqueeze(0)       # [1, K+1, H, W]


def _loss(pred, target, num_objects):
    N, _, H, W = target.shape
    ce = (-torch.log(pred[:, :num_objects + 1]) * target[:, :num_objects + 1]).sum(1).view(N, -1)
    ce = torch.sort(ce, dim=-1, descending=True)[0][:, :int(H * W * 0.4)].mean()
    p, t = pred[0, 1:num_objects + 1], target[0, 1:num_objects + 1]
    iou = torch.min(p, t).sum((1, 2)) / torch.max(p, t).sum((1, 2))
    return ce + (1 - iou).mean()


def reference_video(net, frames, first_mask, save_freq, loop, rate):
    """frames [T, 3, H, W] normalised; first_mask [1, K+1, H, W] -> written probabilities [T, K+1, H, W]."""
    K = first_mask.shape[1] - 1
    written, keys, values = [first_mask], [], []
    out = None
    for t in range(1, frames.shape[0]):
        with torch.no_grad():
            prev_mask = first_mask if t == 1 else out
            k, v = _memorize(net, frames[t - 1:t], prev_mask, K)
            logits = _segment(net, frames[t:t + 1], torch.cat(keys + [k], 1), torch.cat(values + [v], 1), K)
            out = torch.softmax(logits, dim=1)
            if (t - 1) % save_freq == 0:
                keys.append(k)
                values.append(v)
        written.append(out)
        if t % save_freq == 0:
            for _ in range(loop):
                out = reference_correction(net, frames[t:t + 1], out, frames[0:1], first_mask, rate)
    return torch.cat(written)


def reference_correction(net, frame, out, ref_frame, ref_mask, rate):
    """One correction iteration of the original: out [1, K+1, H, W] -> out - rate x d loss / d out."""
    K = ref_mask.shape[1] - 1
    tmp = out.detach().clone().requires_grad_(True)
    k, v = _memorize(net, frame, tmp, K)
    back = torch.softmax(_segment(net, ref_frame, k, v, K), dim=1)
    grad, = torch.autograd.grad(_loss(back, ref_mask, K), tmp)
    return out - rate * grad
