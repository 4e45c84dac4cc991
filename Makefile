# Everything a newcomer runs goes through these targets; each one installs
# what it needs into .venv first, so a fresh clone needs only Python 3.11.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-dev
# The suite mostly waits on sockets and timers: more workers than cores pays.
TEST_WORKERS ?= 4

.PHONY: install demo test check bench run sim clean install-service

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m execd.demo

test: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS)

check: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# make bench: the quick profile (target < 5 min on 2 cores; 3.5 min measured); FULL=1: the long one.
# Figures go to .bench/results.json (git-ignored); execd/bench/README.md explains each.
bench: $(STAMP)
	$(BIN)/python -m execd.bench $(if $(FULL),--full)

run: $(STAMP)
	$(BIN)/execd run

sim: $(STAMP)
	$(BIN)/execd sim

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache build *.egg-info

# make install-service (as root; safe to re-run): execd as a systemd service.
#   - the `execd` system user and group, unless they exist;
#   - this checkout, pip-installed into a venv at $(PREFIX)/.venv (the unit's ExecStart);
#   - $(CONFDIR)/execd.toml (from config/execd.toml, venue.kind = "paper", the systemd socket
#     and journal paths) and $(CONFDIR)/execd.env (mode 0600, root; from
#     systemd/execd.env.example, for APCA_API_KEY_ID / APCA_API_SECRET_KEY): never overwritten;
#   - the unit in $(UNITDIR) (replaced: that is how an upgrade reaches it), daemon-reload.
# Re-running it upgrades the venv and the unit and keeps the configuration.
# Overrides (command line only): DESTDIR (staging root, for packaging and tests), PREFIX,
# CONFDIR, UNITDIR (the unit is rewritten to match); SYSTEMCTL, USERADD, PIP, VENV_FLAGS,
# ROOT_OWNER and CONFIG_OWNER (install(1) -o/-g flags; empty for an unprivileged dry run).
DESTDIR      =
PREFIX       = /opt/execd
CONFDIR      = /etc/execd
UNITDIR      = /etc/systemd/system
SYSTEMCTL    = systemctl
USERADD      = useradd
SERVICE_VENV = $(DESTDIR)$(PREFIX)/.venv
PIP          = $(SERVICE_VENV)/bin/python -m pip
VENV_FLAGS   =
ROOT_OWNER   = -o root -g root
CONFIG_OWNER = -o root -g execd
# ACCOUNT=name: one instance of the template unit execd@.service per account, with
# $(CONFDIR)/name.toml and name.env; its socket and journal paths come from the unit
# (/run/execd/name/execd.sock, /var/lib/execd/name/journal.db; `execd --account name`).
ACCOUNT      =
ifneq ($(ACCOUNT),)
ifneq ($(shell echo '$(ACCOUNT)' | grep -Ex '[A-Za-z0-9_-]{1,64}'),$(ACCOUNT))
$(error ACCOUNT must be letters, digits, - and _ only)
endif
CONF_NAME    = $(ACCOUNT)
UNIT_FILE    = execd@.service
SERVICE      = execd@$(ACCOUNT)
PATH_EDITS   =
else
CONF_NAME    = execd
UNIT_FILE    = execd.service
SERVICE      = execd
PATH_EDITS   = -e 's|^\# socket_path = \("/run/execd/execd.sock"\).*|socket_path = \1|' \
               -e 's|^\# path = \("/var/lib/execd/journal.db"\).*|path = \1|'
endif

install-service:
	@if id -u execd >/dev/null 2>&1; then echo "user execd exists"; else \
	  echo "creating the execd system user"; \
	  if getent group execd >/dev/null; then group="--gid execd"; else group=--user-group; fi; \
	  $(USERADD) --system $$group --home-dir /var/lib/execd --no-create-home \
	    --shell /usr/sbin/nologin --comment "execd daemon" execd; fi
# umask 022: the service user must be able to read the venv whatever root's umask is.
	umask 022; install -d -m 0755 $(ROOT_OWNER) '$(DESTDIR)$(PREFIX)' && \
	  { test -x '$(SERVICE_VENV)/bin/python' || $(PYTHON) -m venv $(VENV_FLAGS) '$(SERVICE_VENV)'; } && \
	  $(PIP) install --quiet --upgrade '$(CURDIR)' && \
	  install -m 0644 $(ROOT_OWNER) README.md '$(DESTDIR)$(PREFIX)/README.md'
	install -d -m 0750 $(CONFIG_OWNER) '$(DESTDIR)$(CONFDIR)'
	@set -e; dest='$(DESTDIR)$(CONFDIR)/$(CONF_NAME).toml'; \
	if [ -e "$$dest" ]; then echo "kept $$dest"; else \
	  tmp=$$(mktemp); trap 'rm -f "$$tmp"' EXIT; \
	  { echo "# Installed by make install-service from config/execd.toml. Keys: $(CONFDIR)/$(CONF_NAME).env"; \
	    sed -e 's|^kind = "sim"  |kind = "paper"|' \
	        -e 's|^# socket_group = \("execd"\).*|socket_group = \1              # members may use the CLI|' \
	        $(PATH_EDITS) \
	        config/execd.toml; } > "$$tmp"; \
	  install -m 0640 $(CONFIG_OWNER) "$$tmp" "$$dest"; echo "installed $$dest"; fi
	@set -e; dest='$(DESTDIR)$(CONFDIR)/$(CONF_NAME).env'; \
	if [ -e "$$dest" ]; then echo "kept $$dest"; else \
	  install -m 0600 $(ROOT_OWNER) systemd/execd.env.example "$$dest"; echo "installed $$dest"; fi
	install -d -m 0755 '$(DESTDIR)$(UNITDIR)'
	@set -e; tmp=$$(mktemp); trap 'rm -f "$$tmp"' EXIT; \
	sed -e 's|/opt/execd|$(PREFIX)|g' -e 's|/etc/execd|$(CONFDIR)|g' systemd/$(UNIT_FILE) > "$$tmp"; \
	install -m 0644 $(ROOT_OWNER) "$$tmp" '$(DESTDIR)$(UNITDIR)/$(UNIT_FILE)'; \
	echo "installed $(DESTDIR)$(UNITDIR)/$(UNIT_FILE)"
	$(SYSTEMCTL) daemon-reload
	@echo
	@echo "execd is installed. Put the Alpaca keys in $(CONFDIR)/$(CONF_NAME).env, check"
	@echo "$(CONFDIR)/$(CONF_NAME).toml (venue.kind = \"paper\"), then start it and follow its logs:"
	@echo "    systemctl enable --now $(SERVICE)"
	@echo "    journalctl -u $(SERVICE) -f"
