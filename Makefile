# plateflow: two commands do all the set-up on a fresh machine.
#   make run   -> virtualenv, install, napari with the Pipeline builder (headless demo without a display)
#   make test  -> system packages + test dependencies, then the whole suite under a real X server

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# Extras the full app and the test suite use (cupy and tensorflow are opt-in: no GPU / very large).
APP_EXTRAS := napari,torch,jax,cle,dask,progress,ome-zarr
TEST_EXTRAS := $(APP_EXTRAS),dev

# Debian packages: Xvfb and the xcb libraries Qt needs, and a CPU OpenCL driver for pyclesperanto.
APT_PACKAGES := xvfb xauth libgl1 libglx-mesa0 libgl1-mesa-dri libegl1 libfontconfig1 libdbus-1-3 \
	libglib2.0-0 libx11-xcb1 libxkbcommon-x11-0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 \
	libxcb-randr0 libxcb-render-util0 libxcb-shape0 libxcb-xfixes0 libxcb-xinerama0 libxcb-cursor0 \
	pocl-opencl-icd ocl-icd-libopencl1

.PHONY: run test demo system-deps install install-test bench clean lint-imports typecheck screenshot

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(VENV)/.installed-app: pyproject.toml | $(PY)
	$(PIP) install -q -e ".[$(APP_EXTRAS)]"
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(PY)
	$(PIP) install -q -e ".[$(TEST_EXTRAS)]"
	touch $@ $(VENV)/.installed-app

install: $(VENV)/.installed-app
install-test: $(VENV)/.installed-test

system-deps:
	@if [ -x /usr/bin/Xvfb ] && [ -x /usr/bin/xvfb-run ] && [ -e /etc/OpenCL/vendors/pocl.icd ] && [ -e /usr/lib/x86_64-linux-gnu/libxcb-icccm.so.4 -o -e /usr/lib/aarch64-linux-gnu/libxcb-icccm.so.4 ]; then \
		echo "system packages: present"; \
	else \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends --no-upgrade $(APT_PACKAGES); \
	fi

run: install
	@if [ -n "$$DISPLAY" ] || [ -n "$$WAYLAND_DISPLAY" ]; then \
		$(PY) -m plateflow.napari; \
	else \
		echo "No display found: running the same pipeline headless (plateflow demo)."; \
		$(VENV)/bin/plateflow demo; \
	fi

demo: install
	$(VENV)/bin/plateflow demo

test: system-deps install-test
	$(VENV)/bin/lint-imports
	$(MAKE) typecheck
	xvfb-run -a -s "-screen 0 1280x1024x24" $(PY) -m pytest $(PYTEST_ARGS)

lint-imports: install-test
	$(VENV)/bin/lint-imports

# mypy on the headless core (settings in pyproject.toml [tool.mypy]).
typecheck: install-test
	$(VENV)/bin/mypy

# Benchmarks print their figures against their targets (the tuning one needs a display: Xvfb).
bench: system-deps install-test
	@for b in benchmarks/bench_*.py; do echo "== $$b"; xvfb-run -a -s "-screen 0 1280x1024x24" $(PY) $$b || exit 1; done

screenshot: system-deps install-test
	xvfb-run -a -s "-screen 0 1280x1024x24" $(PY) docs/make_screenshot.py

clean:
	rm -rf $(VENV) build dist .pytest_cache
