# The two commands of the README, and a few helpers.
.PHONY: up down test lint install replay
up:        ## everything: install, start Airflow + MLflow UI, run nightly for a 2013 date
	bash infra/local/stack.sh up
down:      ## stop the services `make up` started
	bash infra/local/stack.sh down
test:      ## install, then lint, check the layers, type-check and run the whole test suite
	bash infra/local/stack.sh install
	.venv/bin/ruff check .
	.venv/bin/lint-imports
	.venv/bin/mypy nightshift jobs validation registry serving dags ops
	.venv/bin/python -m pytest -q -n 2 --dist worksteal
install:
	bash infra/local/stack.sh install
replay:    ## replay 2013 (or START=... END=...) day by day through Airflow; chart and tables in docs/replay
	bash infra/local/stack.sh replay $(or $(START),2013-01-01) $(or $(END),2013-12-30)
