"""AdaBN re-estimates BatchNorm statistics on target images and touches no weight."""

import torch
from torch import nn
from torch.utils.data import Dataset

from adaptseg.methods.adabn import reestimate_batchnorm


class Images(Dataset):
    def __init__(self, shift: float):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(16, 3, 8, 8, generator=g) + shift

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"image": self.x[i]}


def test_running_stats_become_the_target_statistics_and_weights_stay():
    model = nn.Sequential(nn.Conv2d(3, 3, 1, bias=False), nn.BatchNorm2d(3))
    with torch.no_grad():
        model[0].weight.copy_(torch.eye(3).view(3, 3, 1, 1))
    weight = model[0].weight.clone()
    assert reestimate_batchnorm(model, Images(shift=5.0), batch_size=4, progress=False) == 1
    data = Images(shift=5.0).x
    assert torch.allclose(model[1].running_mean, data.mean(dim=(0, 2, 3)), atol=1e-4)
    assert torch.equal(model[0].weight, weight)
    assert model[1].momentum == 0.1 and not model.training
