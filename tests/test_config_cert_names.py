"""``[server] cert_names``: the extra names of the local certificate, checked like every other key."""

import pytest

from trunkline.config import ConfigError, config_from_dict


def test_cert_names_are_dns_names_and_ip_addresses():
    config = config_from_dict({"server": {"cert_names": ["gw.example.test", "h3-lab", "10.0.0.5", "fd00::5"]}})
    assert config.server.cert_names == ("gw.example.test", "h3-lab", "10.0.0.5", "fd00::5")
    assert config_from_dict({}).server.cert_names == ()


@pytest.mark.parametrize(
    "raw,message",
    [
        ({"cert_names": "gw.example.test"}, "server.cert_names: expected list, got str"),
        ({"cert_names": ["ok.test", 7]}, "server.cert_names[1]: 7 is neither a DNS name nor an IP address"),
        ({"cert_names": ["bad name"]}, "server.cert_names[0]: 'bad name' is neither"),
        ({"cert_names": ["-x.test"]}, "server.cert_names[0]: '-x.test' is neither"),
        ({"cert_names": ["a..test"]}, "server.cert_names[0]: 'a..test' is neither"),
        ({"cert_names": ["*.example.test"]}, "server.cert_names[0]: '*.example.test' is neither"),
        ({"cert_names": ["x" * 64 + ".test"]}, "server.cert_names[0]: 'xxxx"),
        ({"cert_names": ["gw.test"], "cert_file": "c.pem", "key_file": "k.pem"},
         "server.cert_names: only for the local certificate"),
    ],
)
def test_bad_cert_names_name_the_key(raw, message):
    with pytest.raises(ConfigError) as err:
        config_from_dict({"server": raw})
    assert str(err.value).startswith(message)
