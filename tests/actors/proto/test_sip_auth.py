"""Digest authentication: RFC test vectors, the client header, the verifier."""

from __future__ import annotations

import pytest

from actors.proto.sip.auth import (ClientAuthenticator, DigestChallenge, DigestCredentials,
                                   DigestVerifier, VerifyResult, authorization_header,
                                   digest_response, parse_auth_params)
from actors.proto.sip.errors import SipParseError
from actors.proto.sip.headers import Headers
from actors.proto.sip.message import SipRequest, SipResponse


def test_rfc2617_md5_vector() -> None:
    assert digest_response(
        algorithm="MD5", username="Mufasa", realm="testrealm@host.com", password="Circle Of Life",
        method="GET", uri="/dir/index.html", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
        qop="auth", nc="00000001", cnonce="0a4f113b") == "6629fae49393a05397450978507c4ef1"


@pytest.mark.parametrize(("algorithm", "expected"), [
    ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
    ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
])
def test_rfc7616_vectors(algorithm: str, expected: str) -> None:
    assert digest_response(
        algorithm=algorithm, username="Mufasa", realm="http-auth@example.org",
        password="Circle of Life", method="GET", uri="/dir/index.html",
        nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", qop="auth", nc="00000001",
        cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ") == expected


def test_parse_challenge() -> None:
    ch = DigestChallenge.parse('Digest realm="atlanta.example.com", nonce="ea9c8e88df84f1cec4341ae6cbe5a359",'
                               ' qop="auth,auth-int", algorithm=SHA-256, opaque="x,y", stale=TRUE')
    assert ch.realm == "atlanta.example.com" and ch.qop == ("auth", "auth-int")
    assert ch.algorithm == "SHA-256" and ch.opaque == "x,y" and ch.stale
    assert DigestChallenge.parse(ch.to_header()) == ch
    for bad in ('Basic realm="x"', 'Digest nonce="1"', 'Digest realm="r", nonce="n", algorithm=SHA-512',
                'Digest realm="r" nonce', 'Digest realm="unterminated'):
        with pytest.raises(SipParseError):
            DigestChallenge.parse(bad)
    assert parse_auth_params('Digest a=1,b="2, 3"') == ("Digest", {"a": "1", "b": "2, 3"})


def test_rfc2069_style_without_qop() -> None:
    ch = DigestChallenge(realm="r", nonce="n")
    header = authorization_header(ch, DigestCredentials("u", "p"), method="INVITE", uri="sip:b@h", cnonce="c")
    assert "qop" not in header and "cnonce" not in header
    _, params = parse_auth_params(header)
    assert params["response"] == digest_response(algorithm="MD5", username="u", realm="r", password="p",
                                                 method="INVITE", uri="sip:b@h", nonce="n")


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
def test_verifier_accepts_good_and_rejects_bad(algorithm: str) -> None:
    verifier = DigestVerifier("rtfleet", {"alice": "s3cret"}, b"k" * 32, algorithm=algorithm,
                              nonce_lifetime=30)
    challenge = DigestChallenge.parse(verifier.challenge(now=100.0))
    assert challenge.algorithm == algorithm and challenge.qop == ("auth",)

    def answer(password: str, method: str = "INVITE", user: str = "alice") -> str:
        return authorization_header(challenge, DigestCredentials(user, password), method=method,
                                    uri="sip:bot@10.0.0.1", cnonce="abc", nc=1)

    assert verifier.verify(answer("s3cret"), method="INVITE", now=101.0) is VerifyResult.OK
    assert verifier.verify(answer("wrong"), method="INVITE", now=101.0) is VerifyResult.BAD
    assert verifier.verify(answer("s3cret"), method="BYE", now=101.0) is VerifyResult.BAD
    assert verifier.verify(answer("s3cret", user="mallory"), method="INVITE", now=101.0) is VerifyResult.BAD
    assert verifier.verify(answer("s3cret"), method="INVITE", now=200.0) is VerifyResult.STALE
    assert verifier.verify(None, method="INVITE", now=101.0) is VerifyResult.MISSING
    assert verifier.verify("Digest garbage", method="INVITE", now=101.0) is VerifyResult.BAD
    forged = answer("s3cret").replace(challenge.nonce, "100.000.AAAA")
    assert verifier.verify(forged, method="INVITE", now=101.0) is VerifyResult.BAD
    other = DigestVerifier("rtfleet", {"alice": "s3cret"}, b"z" * 32, algorithm=algorithm)
    assert other.verify(answer("s3cret"), method="INVITE", now=101.0) is VerifyResult.BAD
    assert "stale=TRUE" in verifier.challenge(now=1.0, stale=True)


def _challenge_response(status: int, value: str) -> SipResponse:
    name = "WWW-Authenticate" if status == 401 else "Proxy-Authenticate"
    return SipResponse(status, "Unauthorized", Headers.of([(name, value)]))


def test_client_authenticator_rounds() -> None:
    request = SipRequest("INVITE", "sip:bot@h", Headers.of([("CSeq", "1 INVITE")]))
    auth = ClientAuthenticator(DigestCredentials("alice", "pw"))
    assert auth.authorize(request, "c") is request  # nothing to answer yet
    assert auth.accept(_challenge_response(407, 'Digest realm="r", nonce="n1", qop="auth"'))
    signed = auth.authorize(request, "c1")
    assert "Proxy-Authorization" in signed.headers and "nc=00000001" in signed.headers.get("Proxy-Authorization", "")
    assert "nc=00000002" in auth.authorize(request, "c2").headers.get("Proxy-Authorization", "")
    # the same realm challenging again without stale: our password was refused
    assert not auth.accept(_challenge_response(407, 'Digest realm="r", nonce="n2"'))
    assert auth.accept(_challenge_response(407, 'Digest realm="r", nonce="n3", stale=true'))
    # no credentials, wrong realm, unsupported qop, malformed: no retry
    assert not ClientAuthenticator().accept(_challenge_response(401, 'Digest realm="r", nonce="n"'))
    assert not ClientAuthenticator(DigestCredentials("a", "b", realm="x")).accept(
        _challenge_response(401, 'Digest realm="r", nonce="n"'))
    assert not ClientAuthenticator(DigestCredentials("a", "b")).accept(
        _challenge_response(401, 'Digest realm="r", nonce="n", qop="auth-int"'))
    assert not ClientAuthenticator(DigestCredentials("a", "b")).accept(_challenge_response(401, "Digest ,,,"))
