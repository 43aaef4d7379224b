import pytest

from tasks_server.codec import CACHED_REQUEST_BYTES, TaskCodec
from tasks_server.crypto import Cipher, DecryptionError
from tasks_server.models.queues import QueueRegistration


def _registration(data: object = "x") -> QueueRegistration:
    return QueueRegistration.model_validate(
        {"httpRequest": {"url": "http://127.0.0.1:9/a", "method": "POST", "data": data}},
        context={"stored": True},  # a server-made document: long strings in `data`
    )


def test_tasks_storing_one_document_share_its_validation() -> None:
    codec = TaskCodec(Cipher.from_secret("codec-test"))
    reg = _registration()
    first, second = codec.seal_request(reg, "ID1"), codec.seal_request(reg, "ID2")
    assert first != second  # each row's blob is sealed with its own id
    opened = codec.open_request(first, "ID1")
    assert opened == reg.model_copy(update={"metadata": None})
    assert codec.open_request(second, "ID2") is opened
    other = codec.open_request(codec.seal_request(_registration("y"), "ID3"), "ID3")
    assert other is not opened and other.http_request.data == "y"
    with pytest.raises(DecryptionError):  # the cache never skips the row binding
        codec.open_request(first, "ID2")


def test_large_documents_are_validated_on_each_open() -> None:
    codec = TaskCodec(Cipher.from_secret("codec-test"))
    reg = _registration({"big": "z" * CACHED_REQUEST_BYTES})
    blob = codec.seal_request(reg, "BIG")
    first, second = codec.open_request(blob, "BIG"), codec.open_request(blob, "BIG")
    assert first == second and first is not second
    assert codec._stored.cache_info().currsize == 0


def test_two_codecs_share_no_validated_document() -> None:
    """Each app's codec keeps its own documents: two apps in one process share none."""
    reg = _registration()
    one, two = TaskCodec(Cipher.from_secret("one")), TaskCodec(Cipher.from_secret("two"))
    opened = one.open_request(one.seal_request(reg, "ID1"), "ID1")
    assert one.open_request(one.seal_request(reg, "ID2"), "ID2") is opened
    assert two.open_request(two.seal_request(reg, "ID1"), "ID1") is not opened


def test_a_destination_is_digested_once_per_owner_and_url_by_each_codec() -> None:
    """Every attempt names its destination: the digest is kept per owner and URL, keyed by
    the codec's own secret (another app's codec digests it anew, to another id)."""
    one, two = TaskCodec(Cipher.from_secret("one")), TaskCodec(Cipher.from_secret("two"))
    reg = _registration()
    first = one.destination(reg, "OWNER1")
    assert first is not None and first.address == "http://127.0.0.1:9"
    assert one.destination(_registration("other body"), "OWNER1") is first
    other_owner = one.destination(reg, "OWNER2")
    assert other_owner is not None and other_owner.id != first.id
    assert other_owner.address == first.address
    elsewhere = two.destination(reg, "OWNER1")
    assert elsewhere is not None and elsewhere.id != first.id


def test_a_task_that_opted_out_of_the_circuit_breaker_has_no_destination() -> None:
    reg = QueueRegistration.model_validate(
        {
            "httpRequest": {"url": "http://127.0.0.1:9/a", "method": "GET"},
            "config": {"circuitBreaker": False},
        },
        context={"stored": True},
    )
    assert TaskCodec(Cipher.from_secret("one")).destination(reg, "OWNER1") is None
