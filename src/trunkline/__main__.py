from trunkline.cli.main import app

app(prog_name="trunkline")
