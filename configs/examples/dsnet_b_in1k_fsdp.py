# Example: DS-Net-B ImageNet classification with FSDP (fully sharded data parallel) through
# MMEngine's FlexibleRunner + FSDPStrategy, bf16 mixed precision. Everything else (data, schedule,
# model) is configs/dsnet/dsnet_b_in1k.py.
#
# NEEDS CUDA GPUs: FSDPStrategy starts the process group through mmengine's init_dist, which calls
# torch.cuda.set_device, and AmpOptimWrapper needs CUDA. It is only checked to load and to name
# FlexibleRunner/FSDPStrategy here (tests/test_distributed.py); it was not run on this CPU-only
# machine. For data-parallel training on CPU use plain DDP: bash tools/dist_train.sh CONFIG N.
#
#   bash tools/dist_train.sh configs/examples/dsnet_b_in1k_fsdp.py 8
#
# tools/train.py builds the runner from `runner_type` (RUNNERS.build) when the config sets it.
_base_ = '../dsnet/dsnet_b_in1k.py'

runner_type = 'FlexibleRunner'
strategy = dict(
    type='FSDPStrategy',
    model_wrapper=dict(
        # shard every submodule with more than 10M parameters as its own FSDP unit
        auto_wrap_policy=dict(
            type='torch.distributed.fsdp.wrap.size_based_auto_wrap_policy',
            min_num_params=int(1e7))))
optim_wrapper = dict(type='AmpOptimWrapper', dtype='bfloat16')
