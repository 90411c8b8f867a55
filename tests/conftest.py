import pytest
import torch

from diy import DIYConfig, DIYModel


@pytest.fixture
def config():
    return DIYConfig()  # the course defaults


@pytest.fixture
def model(config):
    torch.manual_seed(0)
    return DIYModel(config).eval()


@pytest.fixture
def input_ids(config):
    generator = torch.Generator().manual_seed(1)
    return torch.randint(1, config.vocab_size, (2, 10), generator=generator)
