# Entry points. `make demo` and `make test` each install first (idempotent; the mmcv wheel is cached
# outside the repo), so both work on a fresh clone.
PY := .venv/bin/python
DEMO_CFG := configs/demo/mask_rcnn_dsnet_t_demo.py
DEMO_DIR := work_dirs/demo

.PHONY: install demo test

install:
	bash tools/install.sh

demo: install
	$(PY) tools/misc/make_demo_coco.py --out data/demo_coco
	$(PY) tools/train.py $(DEMO_CFG) --work-dir $(DEMO_DIR)
	$(PY) tools/test.py $(DEMO_CFG) "$$(cat $(DEMO_DIR)/last_checkpoint)" --work-dir $(DEMO_DIR)

test: install
	$(PY) -m pytest tests -ra -n 2 --dist loadfile
