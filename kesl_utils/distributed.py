"""One run across processes: the process group of ``torchrun``, the samplers that split a batch,
the collectives the trainer needs, and BatchNorm over the global batch.

    torchrun --nproc_per_node 4 -m kesl_utils train --profile paper --dataset cub --loss kesl ...

``torchrun`` starts one process per GPU and sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR`` and ``MASTER_PORT``; :func:`init_from_env` joins the process group they describe
(NCCL on CUDA, each process on ``cuda:LOCAL_RANK``; gloo on CPU). Without that environment
nothing here does anything: :func:`world_size` is 1, :func:`rank` 0, the collectives return
their input and :func:`barrier` returns at once, so a single process runs exactly as before.

What a run means does not depend on the number of processes
    ``Config.batch_size`` is the *global* batch: each of W processes loads ``batch_size / W``
    images per step (:func:`local_batch_size`; W must divide it). :class:`ShuffleShardSampler`
    draws one permutation per epoch from the loader's generator, which the trainer re-seeds
    with (seed, epoch) on every rank, exactly as the ``RandomSampler`` of a single process's
    ``DataLoader(shuffle=True)`` draws it, cuts it into global batches and gives rank r the r-th
    slice of each: the W ranks of step k together see exactly the batch a single process sees
    at step k (the single-process path is unchanged). BatchNorm layers normalise over the global batch
    (:func:`sync_batchnorm`), DDP averages the gradients of equal-sized shards (the gradient of
    the mean loss over the global batch), and the test set is split into contiguous shards
    (:class:`ShardSampler`) whose outputs :func:`gather_rows` puts back in order. So a run on W
    processes computes what the run on one process computes, up to floating-point summation
    order, and both carry the same run id (the record says ``world_size``).

Randomness that is not the data order differs per rank (dropout masks, loader workers'
augmentations): ranks > 0 are re-seeded with :func:`rank_seed`, and checkpoints keep every
rank's RNG states, so an interrupted multi-process run resumes exactly.
"""
from __future__ import annotations

import atexit
import hashlib
import inspect
import os
from typing import Any, Iterator, Optional

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Sampler

from .context import resolve_device

__all__ = ["launched", "init_from_env", "world_size", "rank", "local_rank", "is_main", "barrier",
           "broadcast_object", "all_gather_object", "all_reduce_sum", "gather_rows", "local_batch_size",
           "rank_seed", "shard_range", "ShuffleShardSampler", "ShardSampler", "sync_batchnorm",
           "CPUSyncBatchNorm", "wrap_model"]


# -- the process group ----------------------------------------------------------------------
def launched() -> bool:
    """Whether this process was started by ``torchrun`` (or the like) as one of several:
    ``RANK`` is set and ``WORLD_SIZE`` > 1."""
    return "RANK" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1


def local_rank() -> int:
    """This process's index on its node (``LOCAL_RANK``; 0 outside torchrun)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    """Processes in the run (1 without a process group)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's rank (0 without a process group)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main() -> bool:
    """Whether this process writes files and prints (rank 0)."""
    return rank() == 0


def init_from_env(device=None) -> torch.device:
    """Join the process group ``torchrun`` describes (once) and return this process's device.

    ``device``: what the user asked for (``None``: CUDA if available, else CPU). Under torchrun a
    CUDA device becomes ``cuda:LOCAL_RANK`` (one GPU per process) with the NCCL backend; a CPU
    device uses gloo. Outside torchrun this returns the device and starts nothing.
    """
    requested = resolve_device(device)
    if not launched():
        return requested
    if requested.type == "cuda":
        if requested.index is not None and requested.index != local_rank():
            raise ValueError(f"device {requested} under torchrun: each process uses cuda:LOCAL_RANK "
                             f"(here cuda:{local_rank()}); pass --device cuda")
        requested = torch.device("cuda", local_rank())
        torch.cuda.set_device(requested)
    if not dist.is_initialized():
        backend = "nccl" if requested.type == "cuda" else "gloo"
        bind = {}
        if requested.type == "cuda" and "device_id" in inspect.signature(dist.init_process_group).parameters:
            bind["device_id"] = requested  # torch ≥ 2.3: NCCL connects eagerly, on this GPU
        dist.init_process_group(backend, init_method="env://", **bind)
        atexit.register(_shutdown)
    return requested


def _shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    """Wait for every rank (a no-op in a single process)."""
    if _active():
        dist.barrier()


# -- collectives ----------------------------------------------------------------------------
def _comm_device() -> torch.device:
    """Where tensors must lie for the backend: the current GPU for NCCL, else the CPU."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank (picklable objects; ``obj`` itself in one process)."""
    if not _active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_gather_object(obj: Any) -> list:
    """Every rank's ``obj``, in rank order (``[obj]`` in one process)."""
    if not _active():
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` summed over the ranks, in place (returned for convenience)."""
    if _active():
        target = _comm_device()
        if tensor.device == target:
            dist.all_reduce(tensor)
        else:
            moved = tensor.to(target)
            dist.all_reduce(moved)
            tensor.copy_(moved)
    return tensor


def gather_rows(tensor: torch.Tensor) -> torch.Tensor:
    """The ranks' tensors concatenated along dim 0 in rank order, on every rank.

    Shards may differ in length (padding is added for the transfer and removed), so with the
    contiguous shards of :class:`ShardSampler` the result is the whole split in its original
    order, each sample once. Returned on ``tensor``'s device.
    """
    if not _active():
        return tensor
    target = _comm_device()
    local = tensor.to(target)
    sizes = [torch.zeros(1, dtype=torch.int64, device=target) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, torch.tensor([local.shape[0]], dtype=torch.int64, device=target))
    sizes = [int(s.item()) for s in sizes]
    longest = max(sizes)
    padded = local.new_zeros((longest, *local.shape[1:]))
    padded[:local.shape[0]] = local
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded)
    return torch.cat([part[:size] for part, size in zip(parts, sizes)]).to(tensor.device)


class _AllReduceSum(torch.autograd.Function):
    """Sum over the ranks with a gradient: the gradient of a sum is the sum of the gradients."""

    @staticmethod
    def forward(ctx, tensor):
        out = tensor.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


# -- data ------------------------------------------------------------------------------------
def local_batch_size(batch_size: int, world: Optional[int] = None) -> int:
    """Images each process loads per step: the global ``batch_size`` / ``world`` processes.

    Raises ``ValueError`` when ``world`` does not divide ``batch_size`` (the global batch, and so
    the run, would depend on the number of processes).
    """
    world = world_size() if world is None else int(world)
    if batch_size % world:
        raise ValueError(f"batch_size {batch_size} (the global batch) is not divisible by the {world} "
                         f"processes of this run: each process loads batch_size / {world} images per step. "
                         f"Use a batch size that is a multiple of {world}, or another number of processes "
                         "(torchrun --nproc_per_node × --nnodes)")
    return batch_size // world


def rank_seed(seed: int, rank_: int) -> int:
    """A seed for rank ``rank_`` derived from ``seed``: ``seed`` itself for rank 0 (a single
    process is unchanged), a 63-bit hash of (seed, rank) otherwise."""
    if rank_ == 0:
        return int(seed)
    digest = hashlib.sha256(f"kesl_utils.rank_seed/{int(seed)}/{int(rank_)}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def shard_range(n: int, rank_: int, world: int) -> range:
    """Rank ``rank_``'s contiguous share of ``range(n)``; shares differ in length by at most 1 and
    follow each other in rank order (no padding, no sample twice)."""
    base, extra = divmod(n, world)
    start = rank_ * base + min(rank_, extra)
    return range(start, start + base + (rank_ < extra))


class ShuffleShardSampler(Sampler[int]):
    """Rank ``rank``'s part of each shuffled global batch of ``batch_size`` (training).

    Per epoch: ``torch.randperm(n, generator=generator)`` — drawn lazily, when the loader's
    iterator asks for the first index, which is after the DataLoader has drawn its worker base
    seed from the same generator, exactly as ``RandomSampler`` does — cut into
    ``n // batch_size`` global batches (the incomplete last one dropped); rank r yields slice
    ``[r·b, (r+1)·b)`` of each, b = batch_size / world. With ``world = 1`` this is the order of
    ``DataLoader(shuffle=True, drop_last=True, generator=generator)``.
    """

    def __init__(self, n: int, batch_size: int, *, generator: torch.Generator, rank: int = 0, world: int = 1):
        if not 0 <= rank < world:
            raise ValueError(f"rank {rank} is not in 0..{world - 1}")
        self.n, self.batch_size, self.rank, self.world = int(n), int(batch_size), int(rank), int(world)
        self.local = local_batch_size(self.batch_size, self.world)
        self.generator = generator

    @property
    def num_batches(self) -> int:
        return self.n // self.batch_size

    def __len__(self) -> int:
        return self.num_batches * self.local

    def __iter__(self) -> Iterator[int]:
        order = torch.randperm(self.n, generator=self.generator).tolist()
        for start in range(0, self.num_batches * self.batch_size, self.batch_size):
            first = start + self.rank * self.local
            yield from order[first:first + self.local]


class ShardSampler(Sampler[int]):
    """Rank ``rank``'s contiguous shard of ``range(n)`` in order (evaluation; :func:`shard_range`)."""

    def __init__(self, n: int, *, rank: int = 0, world: int = 1):
        self.indices = shard_range(int(n), int(rank), int(world))

    def __len__(self) -> int:
        return len(self.indices)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)


# -- the model ---------------------------------------------------------------------------------
class CPUSyncBatchNorm(nn.BatchNorm2d):
    """``BatchNorm2d`` whose training statistics are those of the global batch, for gloo on CPU.

    ``torch.nn.SyncBatchNorm`` accepts GPU tensors only; this is the same computation (the mean
    and biased variance over all ranks' images normalise, the unbiased variance updates the
    running estimate) with two differentiable all-reduces, in float64 for the sums. In eval mode,
    or without a process group, it is ``BatchNorm2d``. The state dict is ``BatchNorm2d``'s.
    """

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not (self.training and _active()):
            return super().forward(input)
        self._check_input_dim(input)
        dims, shape = (0, 2, 3), (1, -1, 1, 1)
        count = input.new_tensor([input.numel() // input.shape[1]], dtype=torch.float64)
        totals = _AllReduceSum.apply(torch.cat([input.sum(dims, dtype=torch.float64), count]))
        n = totals[-1]
        mean = totals[:-1] / n
        centred = input - mean.to(input.dtype).view(shape)
        var = _AllReduceSum.apply(centred.double().square().sum(dims)) / n
        out = centred * torch.rsqrt(var + self.eps).to(input.dtype).view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                factor = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - factor).add_(mean.to(self.running_mean.dtype), alpha=factor)
                unbiased = var * n / (n - 1).clamp(min=1)
                self.running_var.mul_(1 - factor).add_(unbiased.to(self.running_var.dtype), alpha=factor)
        return out


def _to_cpu_sync(module: nn.Module) -> nn.Module:
    if isinstance(module, nn.BatchNorm2d) and not isinstance(module, CPUSyncBatchNorm):
        converted = CPUSyncBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                                     module.track_running_stats)
        # The same parameter and buffer tensors: an optimiser or a loaded state dict stays valid.
        if module.affine:
            converted.weight, converted.bias = module.weight, module.bias
        if module.track_running_stats:
            converted.running_mean, converted.running_var = module.running_mean, module.running_var
            converted.num_batches_tracked = module.num_batches_tracked
        converted.train(module.training)
        return converted
    for name, child in list(module.named_children()):
        setattr(module, name, _to_cpu_sync(child))
    return module


def sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` with every BatchNorm normalising over the global batch when several processes
    train: ``torch.nn.SyncBatchNorm`` on CUDA, :class:`CPUSyncBatchNorm` on CPU. The parameters
    and buffers are kept (same tensors, same state-dict keys), so checkpoints and weights load
    into a 1-process or an N-process model alike."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return _to_cpu_sync(model)


def wrap_model(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` in ``DistributedDataParallel`` when several processes train, else ``model``.

    Buffers are not re-sent from rank 0 at every forward: the BatchNorm buffers are already
    equal on every rank (they are updated from global statistics). They are synchronised once,
    when the wrapper is built, like the parameters.
    """
    if not _active():
        return model
    from torch.nn.parallel import DistributedDataParallel

    # torch ≥ 2.14 names the switch forward_sync_buffers (and warns about broadcast_buffers).
    known = inspect.signature(DistributedDataParallel.__init__).parameters
    no_forward_sync = {"forward_sync_buffers" if "forward_sync_buffers" in known else "broadcast_buffers": False}
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                   **no_forward_sync)
