"""CheckpointHook that never leaves a truncated checkpoint or ``last_checkpoint`` after a kill."""
import os.path as osp

from mmengine.dist import is_main_process
from mmengine.hooks import CheckpointHook
from mmengine.registry import HOOKS

from ..fileio import atomic_write


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """mmengine's ``CheckpointHook`` with crash-safe saving; same arguments.

    Two differences from mmengine 0.10.7's hook, both about a job killed while saving:

    * local checkpoints and ``last_checkpoint`` are written atomically (temporary file, then
      ``os.replace``; see :func:`mmvit_hybrid.engine.fileio.atomic_write`), so ``--resume`` never
      meets a truncated file;
    * with ``max_keep_ckpts``, the outdated checkpoint is removed *after* the new one is complete
      and ``last_checkpoint`` points at it (mmengine removes it first, so a kill during the save
      left no loadable checkpoint at all with ``max_keep_ckpts=1``).

    Remote ``out_dir`` (``s3://`` etc.) and explicit ``backend_args`` keep mmengine's backend.
    ``tools/train.py`` uses this hook in place of ``CheckpointHook``.

    Args:
        *args, **kwargs: as :class:`mmengine.hooks.CheckpointHook`.
    """

    def before_train(self, runner) -> None:
        """Use the atomic local backend when the checkpoints go to a local folder."""
        out_dir = self.out_dir if self.out_dir is not None else runner.work_dir
        if (self.backend_args is None and self.file_client_args is None
                and '://' not in str(out_dir)):
            self.backend_args = dict(backend='local_atomic')
        super().before_train(runner)

    def _save_checkpoint_with_step(self, runner, step, meta):
        """Save, point ``last_checkpoint`` at the new file, then drop the outdated one."""
        outdated = None
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids
                                            and self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                outdated = self.keep_ckpt_ids.popleft()
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))

        ckpt_filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, ckpt_filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        runner.save_checkpoint(
            self.out_dir,
            ckpt_filename,
            self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta,
            by_epoch=self.by_epoch,
            backend_args=self.backend_args,
            **self.args)

        # model-parallel strategies save from every rank; the bookkeeping is rank 0's
        if not is_main_process():
            return
        atomic_write(str(self.last_ckpt), osp.join(runner.work_dir, 'last_checkpoint'))
        if outdated is not None and outdated != step:
            path = self.file_backend.join_path(self.out_dir, self.filename_tmpl.format(outdated))
            if self.file_backend.isfile(path):
                self.file_backend.remove(path)
            elif self.file_backend.isdir(path):  # DeepSpeed checkpoints are folders
                self.file_backend.rmtree(path)
