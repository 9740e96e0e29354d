"""Small models shared by the TensorRT unit tests, the GPU tests and the benchmarks."""

from __future__ import annotations

import torch


class SmallConvNet(torch.nn.Module):
    """conv-bn-relu ×2, global pool, linear: the shape of the calibration ResNet in miniature."""

    def __init__(self, in_ch: int = 5, classes: int = 2) -> None:
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(in_ch, 16, 3, padding=1),
            torch.nn.BatchNorm2d(16),
            torch.nn.ReLU(),
            torch.nn.Conv2d(16, 32, 3, stride=2, padding=1),
            torch.nn.BatchNorm2d(32),
            torch.nn.ReLU(),
        )
        self.head = torch.nn.Linear(32, classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.features(x)
        logits = self.head(f.mean(dim=(2, 3)))
        return logits, f.amax(dim=1, keepdim=True)


def trained_like_net() -> SmallConvNet:
    """Deterministic weights with non-trivial BN statistics (so BN folding matters)."""
    torch.manual_seed(0)
    net = SmallConvNet()
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(torch.randn(8, 5, 16, 16))
    return net.eval()
