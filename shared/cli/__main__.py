from shared.cli import run

run()
