"""`spanbank ml-backend`: serve a trained model to Label Studio as its ML backend."""

import click

from spanbank.cli._common import errors_as_click


@click.command()
@click.option(
    "--model",
    "model_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="A model directory from `spanbank train`.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=9090, show_default=True)
@click.pass_obj
def ml_backend(obj, model_dir, host, port):
    """Answer Label Studio's /health, /setup and /predict with the model's spans and links.

    Connect it to a project with `spanbank push --ml-backend http://HOST:PORT`; Label Studio
    then asks it for predictions of each task an annotator opens. Stop with Ctrl-C.

    Example:

    \b
        spanbank ml-backend --model models/polnear --port 9090
    """
    from spanbank.labelstudio.mlbackend import make_server

    with errors_as_click():
        server = make_server(model_dir, obj.corpus.schema, host, port)
    click.echo(f"serving {model_dir} on http://{host}:{server.server_address[1]} (Ctrl-C stops)")
    try:
        server.serve_forever()
    finally:
        server.server_close()
