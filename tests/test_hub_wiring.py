"""The whole suite's Hugging Face clients talk to the local server started in conftest.py."""


def test_clients_point_at_the_local_server(hub):
    import datasets.config
    from huggingface_hub import HfApi, constants

    assert hub.url == constants.ENDPOINT
    assert hub.url == datasets.config.HF_ENDPOINT
    assert hub.url.startswith("http://127.0.0.1:")
    assert HfApi().whoami()["name"] == hub.user
