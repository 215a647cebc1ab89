"""KL annealing and teacher forcing: exact values computed by hand from the formulas."""

import pytest

from bair_world.training.schedules import KLAnneal, TeacherForcing


def test_cyclical_exact_values():
    # T=10, M=3: period ceil(10/3)=4, tau = mod(t-1, 4) / (10/3) = 0.3 * mod(t-1, 4); R=0.5.
    kl = KLAnneal("cyclical", total_steps=10, cycles=3, ratio=0.5, max_beta=1.0)
    assert kl.period == 4
    expected = {1: 0.0, 2: 0.6, 3: 1.0, 4: 1.0, 5: 0.0, 6: 0.6, 7: 1.0, 9: 0.0, 10: 0.6, 13: 0.0}
    for t, beta in expected.items():
        assert kl(t) == pytest.approx(beta), t


def test_cyclical_even_split_and_max_beta():
    # T=100, M=4, R=0.5: period 25, tau=(t-1)/25; beta = 0.1 * min(1, tau/0.5).
    kl = KLAnneal("cyclical", total_steps=100, cycles=4, ratio=0.5, max_beta=0.1)
    assert kl(1) == 0.0
    assert kl(6) == pytest.approx(0.1 * (5 / 25) / 0.5)  # 0.04
    assert kl(13) == pytest.approx(0.1 * (12 / 25) / 0.5)  # 0.096
    assert kl(14) == pytest.approx(0.1)  # tau=0.52 > R
    assert kl(26) == 0.0 and kl(27) == pytest.approx(0.1 * (1 / 25) / 0.5)


def test_monotonic_is_one_cycle_then_max():
    kl = KLAnneal("monotonic", total_steps=10, cycles=3, ratio=0.5, max_beta=2.0)
    assert [kl(t) for t in (1, 2, 3, 4)] == pytest.approx([0.0, 1.2, 2.0, 2.0])
    assert [kl(t) for t in (5, 6, 10, 1000)] == [2.0, 2.0, 2.0, 2.0]  # no restart (the seed's bug)


def test_none_is_constant_and_bad_arguments():
    kl = KLAnneal("none", total_steps=10, cycles=3, ratio=0.5, max_beta=0.3)
    assert kl(1) == kl(7) == 0.3
    with pytest.raises(ValueError, match="1-based"):
        kl(0)
    for bad in (dict(mode="linear"), dict(ratio=0.0), dict(cycles=0), dict(max_beta=-1.0)):
        with pytest.raises(ValueError):
            KLAnneal(**bad)
    assert repr(kl) == "KLAnneal(mode='none', total_steps=10, cycles=3, ratio=0.5, max_beta=0.3)"


def test_teacher_forcing_exact_values():
    tf = TeacherForcing(start=1.0, decay_start_epoch=100, decay_step=0.003, floor=0.1)
    assert tf(0) == 1.0 and tf(99) == 1.0
    assert tf(100) == pytest.approx(0.997)  # the first decayed epoch is decay_start_epoch
    assert tf(101) == pytest.approx(0.994)
    assert tf(199) == pytest.approx(1.0 - 0.003 * 100)  # 0.7
    assert tf(398) == pytest.approx(0.103)
    assert tf(399) == pytest.approx(0.1) and tf(1000) == 0.1  # the floor holds (the seed's did not)


def test_teacher_forcing_bad_arguments():
    with pytest.raises(ValueError, match="0-based"):
        TeacherForcing()(-1)
    for bad in (dict(floor=0.5, start=0.4), dict(decay_step=-0.1), dict(start=1.5)):
        with pytest.raises(ValueError):
            TeacherForcing(**bad)
    assert "decay_step=0.003" in repr(TeacherForcing())
