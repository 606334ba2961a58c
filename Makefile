# Entry points. `make demo` and `make test` each install first (idempotent; the mmcv wheel is cached
# outside the repo), so both work on a fresh clone.
PY := .venv/bin/python
DEMO_CFG := configs/demo/mask_rcnn_dsnet_t_demo.py
DEMO_DIR := work_dirs/demo

.PHONY: install demo test

install:
	bash tools/install.sh

# data -> train -> test on the 50 held-out images, painting each (--show-dir: DetVisualizationHook,
# ground truth left, prediction right) -> one of them through demo/image_demo.py (DetInferencer).
demo: install
	$(PY) tools/misc/make_demo_coco.py --out data/demo_coco
	$(PY) tools/train.py $(DEMO_CFG) --work-dir $(DEMO_DIR)
	$(PY) tools/test.py $(DEMO_CFG) "$$(cat $(DEMO_DIR)/last_checkpoint)" --work-dir $(DEMO_DIR) \
		--show-dir $(CURDIR)/$(DEMO_DIR)/vis
	$(PY) demo/image_demo.py data/demo_coco/val/000000.png $(DEMO_CFG) "$$(cat $(DEMO_DIR)/last_checkpoint)" \
		--out-dir $(DEMO_DIR)/image_demo
	@echo "[demo] pictures of the held-out images (ground truth | prediction): $(DEMO_DIR)/vis/*.png"
	@echo "[demo] one image through demo/image_demo.py: $(DEMO_DIR)/image_demo/vis/000000.png"

test: install
	$(PY) -m pytest tests -ra -n 2 --dist loadfile
