"""Name the image and the fix when its channel count does not fit the model."""
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS


def expected_channels(model):
    """Channels the model takes: the data preprocessor's mean/std length, else the backbone's
    ``in_channels``; None if neither says."""
    preprocessor = getattr(model, 'data_preprocessor', None)
    mean = getattr(preprocessor, 'mean', None) if getattr(preprocessor, '_enable_normalize',
                                                          False) else None
    if mean is not None:
        return int(mean.numel())
    return getattr(getattr(model, 'backbone', None), 'in_channels', None)


@HOOKS.register_module()
class InputCheckHook(Hook):
    """Raise ``ValueError`` before a batch whose images have the wrong number of channels.

    Grayscale or RGBA images otherwise fail inside mmengine's data preprocessor with
    ``IndexError: index 2 is out of bounds for dimension 0 with size 1`` (BGR->RGB swap), or
    inside the first convolution. Only the first ``max_checks`` batches of each loop are checked
    (a dataset usually has one image format), so the cost is negligible.

    Args:
        max_checks (int): batches checked per train/val/test loop. Defaults to 1; 0 disables.
    """

    priority = 'VERY_HIGH'

    def __init__(self, max_checks: int = 1):
        if not isinstance(max_checks, int) or max_checks < 0:
            raise ValueError(f'InputCheckHook: max_checks must be an int >= 0, got {max_checks!r}')
        self.max_checks = max_checks
        self._seen = dict(train=0, val=0, test=0)

    def _check(self, runner, mode, data_batch):
        if self._seen[mode] >= self.max_checks or not isinstance(data_batch, dict):
            return
        self._seen[mode] += 1
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        want = expected_channels(model)
        inputs = data_batch.get('inputs')
        if want is None or inputs is None:
            return
        images = list(inputs) if isinstance(inputs, (list, tuple)) else [i for i in inputs]
        samples = data_batch.get('data_samples') or [None] * len(images)
        for image, sample in zip(images, samples):
            if getattr(image, 'dim', lambda: 0)() != 3 or image.shape[0] == want:
                continue
            path = getattr(sample, 'metainfo', {}).get('img_path', '?') if sample is not None \
                else '?'
            raise ValueError(
                f'{mode} image {path} has {image.shape[0]} channels but the model takes {want} '
                '(data_preprocessor mean/std, backbone in_channels). Load images in colour '
                "(LoadImageFromFile color_type='color', the default), or build the model for "
                f'{image.shape[0]} channels: backbone in_channels and data_preprocessor '
                'mean/std/bgr_to_rgb.')

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        """Check the first training batches."""
        self._check(runner, 'train', data_batch)

    def before_val_iter(self, runner, batch_idx, data_batch=None) -> None:
        """Check the first validation batches."""
        self._check(runner, 'val', data_batch)

    def before_test_iter(self, runner, batch_idx, data_batch=None) -> None:
        """Check the first test batches."""
        self._check(runner, 'test', data_batch)
