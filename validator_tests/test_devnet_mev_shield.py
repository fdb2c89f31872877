"""MEV shield on the devnet's Substrate face: the SDK's real ML-KEM-768 ciphertexts, decrypted by the devnet.

Fast tests check the author's keys and decryption against the SDK's own
encryptor (`bittensor_core.encrypt_mlkem768`) and the AEAD against libsodium
(PyNaCl). The slow ones run `btcli subnets register` and `btcli stake add`
(shielded, btcli's default) as subprocesses against a devnet process, and
send hostile carriers through the SDK's transport.
"""

from __future__ import annotations

import os
import struct

import bittensor as bt
import bittensor_core
import pytest
from cryptography.hazmat.primitives.asymmetric import mlkem
from harness.btcli import run_btcli as btcli_json
from harness.devnet import bootstrap, env_set, free_port, running_devnet

from subnet.chain import make_subtensor
from subnet.devnet.bootstrap import ensure_wallet
from subnet.devnet.config import SUBSTRATE_PORT_ENV
from subnet.devnet.runtime.burn import decay_factor_q32, mul_by_q32
from subnet.devnet.substrate_rpc.mev_shield import (
    SECRET_FILE,
    MalformedCiphertext,
    ShieldedTransaction,
    ShieldKeys,
    Unshield,
    twox128,
    xchacha20poly1305_decrypt,
)

# -- the author's keys and decryption (fast) ---------------------------------------------


def test_sdk_ciphertext_decrypts_with_the_key_served_and_survives_restart(tmp_path):
    keys = ShieldKeys(tmp_path, rotation_blocks=10)
    assert (tmp_path / SECRET_FILE).stat().st_mode & 0o777 == 0o600
    next_key = keys.storage("NextKey", 14)
    assert len(next_key) == 1184 and keys.storage("NextKeyExpiresAt", 14) == 30
    assert keys.storage("PendingKey", 14) == keys.public(0) != next_key
    blob = bittensor_core.encrypt_mlkem768(next_key, b"signed inner extrinsic", include_key_hash=True)
    shielded = ShieldedTransaction.parse(blob)
    assert shielded.key_hash == twox128(next_key)
    assert keys.unshield(shielded, 15) == (Unshield.DECRYPTED, b"signed inner extrinsic")
    assert keys.unshield(shielded, 29)[0] is Unshield.DECRYPTED  # accepted through the next rotation
    assert keys.unshield(shielded, 30) == (Unshield.UNKNOWN_KEY, None)  # expired (NextKeyExpiresAt, exclusive)
    reopened = ShieldKeys(tmp_path, rotation_blocks=10)  # as after kill -9: same secret, same keys
    assert reopened.storage("NextKey", 14) == next_key
    assert reopened.unshield(shielded, 15) == (Unshield.DECRYPTED, b"signed inner extrinsic")
    assert ShieldKeys(tmp_path / "other").storage("NextKey", 14) != next_key  # a fresh devnet, fresh keys


def test_tampered_foreign_and_malformed_ciphertexts_have_their_outcomes(tmp_path):
    keys = ShieldKeys(tmp_path, rotation_blocks=10)
    blob = bytearray(bittensor_core.encrypt_mlkem768(keys.storage("NextKey", 0), b"x" * 64, include_key_hash=True))
    blob[-1] ^= 1  # AEAD tag
    assert keys.unshield(ShieldedTransaction.parse(bytes(blob)), 1) == (Unshield.UNDECRYPTABLE, None)
    foreign = mlkem.MLKEM768PrivateKey.generate().public_key().public_bytes_raw()
    other = bittensor_core.encrypt_mlkem768(foreign, b"x", include_key_hash=True)
    assert keys.unshield(ShieldedTransaction.parse(other), 1) == (Unshield.UNKNOWN_KEY, None)
    short_kem = twox128(keys.storage("NextKey", 0)) + struct.pack("<H", 4) + bytes(4) + bytes(24) + bytes(16)
    assert keys.unshield(ShieldedTransaction.parse(short_kem), 1) == (Unshield.UNDECRYPTABLE, None)
    for bad in (b"", bytes(17), bytes(16) + struct.pack("<H", 1088) + bytes(100), bytes(8193)):
        with pytest.raises(MalformedCiphertext):
            ShieldedTransaction.parse(bad)
    with pytest.raises(ValueError):
        (tmp_path / "broken").mkdir()
        (tmp_path / "broken" / SECRET_FILE).write_bytes(b"short")
        ShieldKeys(tmp_path / "broken")


def test_xchacha20poly1305_matches_libsodium():
    nacl = pytest.importorskip("nacl.bindings")
    key, nonce = bytes(range(32)), bytes(range(100, 124))
    for msg in (b"", b"a", os.urandom(1000)):
        sealed = nacl.crypto_aead_xchacha20poly1305_ietf_encrypt(msg, None, nonce, key)
        assert xchacha20poly1305_decrypt(key, nonce, sealed) == msg


# -- btcli and the SDK against a devnet process (slow) --------------------------------------


@pytest.fixture(scope="module")
def shield_net(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("devnet-mev")
    port = free_port()
    with env_set(SUBSTRATE_PORT_ENV, str(port)):  # the devnet process reads it at start
        with running_devnet(tmp, block_ms=0, allow_admin=True) as handle:
            result = bootstrap(handle, tmp / "wallets", miners=1, commit_reveal=False)
            chain = make_subtensor(handle.network)
            newcomer = ensure_wallet("newcomer", tmp / "wallets")
            owner = bt.Wallet("owner", "default", str(tmp / "wallets"))
            res = chain.execute(bt.Transfer(dest_ss58=newcomer.coldkeypub.ss58_address, amount_tao=100), owner)
            assert res.success, res.message
            yield handle, result, chain, newcomer, f"ws://127.0.0.1:{port}", tmp
            chain.close()


def run_btcli(net, *args: str) -> dict:
    """The pinned SDK's btcli, non-interactive (no stdin, -y), --json output parsed."""
    return btcli_json(net[4], net[5], *args, "-y")


def _block(url: str, block_hash: str) -> tuple[list[str], list[tuple[int, str, dict]]]:
    """A block's `Pallet.call`s and its events `(extrinsic index, Pallet.Event, attributes)`, decoded by the SDK."""
    sub = bt.Subtensor(network=url)
    try:
        assert sub.block >= 0  # connects
        raw = sub._client._substrate.raw  # the SDK's RpcSubstrate transport: decodes bodies and events itself
        block = sub._call(raw.get_block(block_hash))
        events = sub._call(raw.get_events(block_hash=block_hash))
    finally:
        sub.close()
    calls = [f"{x['call']['call_module']}.{x['call']['call_function']}" for x in block.extrinsics]
    return calls, [(e["extrinsic_idx"], f"{e['module_id']}.{e['event_id']}", e["attributes"]) for e in events]


def _next_key(sub) -> bytes:
    """`MevShield.NextKey` as the SDK reads it (0x-hex or bytes)."""
    value = sub.query(bt.storage.MevShield.NextKey)
    return bytes.fromhex(value.removeprefix("0x")) if isinstance(value, str) else bytes(value)


def _block_calls(url: str, block_hash: str) -> list[str]:
    return _block(url, block_hash)[0]


@pytest.mark.slow
def test_btcli_subnets_register_is_shielded_decrypted_and_burns(shield_net):
    handle, result, chain, newcomer, url, _ = shield_net
    st = bt.storage.SubtensorModule
    netuid, cold, hot = result.netuid, newcomer.coldkeypub.ss58_address, newcomer.hotkey.ss58_address
    burn, half_life = chain.query(st.Burn, [netuid]), chain.query(st.BurnHalfLife, [netuid])
    expected = max(chain.query(st.MinBurn, [netuid]), mul_by_q32(burn, decay_factor_q32(half_life)))
    before = chain.balances.get(cold).rao
    out = run_btcli(shield_net, "subnets", "register", "--netuid", str(netuid), "-w", "newcomer")
    assert out["success"] and out["data"]["shielded"], out
    assert hot in [n.hotkey for n in chain.subnets.metagraph(netuid).neurons]
    assert before - chain.balances.get(cold).rao == expected  # the decayed burn, no fee (the devnet charges none)
    # The carrier and the decrypted inner extrinsic, in that order, in one block.
    calls, events = _block(url, out["block_hash"])
    assert calls == ["MevShield.submit_encrypted", "SubtensorModule.burned_register"]
    submitted = [attrs for idx, name, attrs in events if name == "MevShield.EncryptedSubmitted"]
    assert len(submitted) == 1 and submitted[0]["who"] == cold
    assert [name for idx, name, _ in events if name.startswith("System.")] == ["System.ExtrinsicSuccess"] * 2


@pytest.mark.slow
def test_btcli_stake_add_default_is_shielded(shield_net):
    handle, result, chain, newcomer, url, _ = shield_net
    st = bt.storage.SubtensorModule
    validator = result.validator.hotkey
    staked = chain.query(st.TotalHotkeyAlpha, [validator, result.netuid])
    out = run_btcli(shield_net, "stake", "add", "--netuid", str(result.netuid), "--amount-tao", "7",
                    "-w", "newcomer", "--hotkey", validator)
    assert out["success"] and out["data"]["shielded"], out
    assert chain.query(st.TotalHotkeyAlpha, [validator, result.netuid]) == staked + 7 * 10**9


@pytest.mark.slow
def test_hostile_carriers_are_refused_or_included_alone(shield_net):
    handle, result, chain, newcomer, url, _ = shield_net
    sub = bt.Subtensor(network=url)
    cold = newcomer.coldkeypub.ss58_address
    try:
        res = sub.submit_call(bt.calls.MevShield.submit_encrypted(ciphertext=bytes(17)), newcomer)
        # FailedShieldedTxParsing (InvalidTransaction::Custom(23)) in the pool, named by the SDK's own error map
        assert not res.success and "shielded (MEV-protected) extrinsic payload could not be parsed" in res.message
        next_key = _next_key(sub)
        assert len(next_key) == 1184
        foreign = mlkem.MLKEM768PrivateKey.generate().public_key().public_bytes_raw()
        tampered = bytearray(bittensor_core.encrypt_mlkem768(next_key, b"\x00" * 40, include_key_hash=True))
        tampered[-3] ^= 0xFF
        for blob in (bytes(tampered),  # right key, failed tag
                     bittensor_core.encrypt_mlkem768(foreign, b"\x00" * 40, include_key_hash=True),  # not our key
                     bittensor_core.encrypt_mlkem768(next_key, b"not an extrinsic", include_key_hash=True)):
            nonce = chain.query(bt.storage.System.Account, [cold])["nonce"]
            res = sub.submit_call(bt.calls.MevShield.submit_encrypted(ciphertext=blob), newcomer)
            assert res.success, res.message  # the carrier is included; the chain keeps going
            assert chain.query(bt.storage.System.Account, [cold])["nonce"] == nonce + 1
            assert _block_calls(url, res.block_hash) == ["MevShield.submit_encrypted"]  # and nothing else
        assert sub.block == chain.block  # still serving
    finally:
        sub.close()


@pytest.mark.slow
def test_key_read_before_kill9_still_opens_after_restart(shield_net):
    """Runs last in this module: it kill -9s the devnet. The author's keys survive with its state."""
    handle, result, chain, newcomer, url, _ = shield_net
    sub = bt.Subtensor(network=url)
    try:
        old_key = _next_key(sub)
    finally:
        sub.close()
    handle.kill()  # no shutdown hooks
    handle.start()
    bob = bittensor_core.Keypair.create_from_uri("//Bob").ss58_address
    sub = bt.Subtensor(network=url)
    try:
        assert _next_key(sub) == old_key and len(old_key) == 1184
        substrate, keypair = sub._client._substrate, newcomer.coldkey  # the SDK's RpcSubstrate, as executor uses it
        before = sub.balances.get(bob).rao
        nonce = sub._call(substrate.account_next_index(keypair.ss58_address))
        call = sub._call(substrate.compose(bt.calls.Balances.transfer_keep_alive(dest=bob, value=10**9)))
        inner, _ = sub._call(substrate.sign_extrinsic(call, keypair, nonce=nonce + 1, period=8))
        blob = bittensor_core.encrypt_mlkem768(old_key, inner, include_key_hash=True)  # to the pre-crash key
        carrier = sub._call(substrate.compose(bt.calls.MevShield.submit_encrypted(ciphertext=blob)))
        res = sub._call(substrate.submit(carrier, keypair, nonce=nonce, period=8))
        assert res.success, res.message
        assert sub.balances.get(bob).rao == before + 10**9
        assert _block_calls(url, res.block_hash) == ["MevShield.submit_encrypted", "Balances.transfer_keep_alive"]
    finally:
        sub.close()
