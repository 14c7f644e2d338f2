"""Positions on the sky: catalog rows matched to spectra by separation (astropy). RA and Dec in degrees
(ICRS/J2000). Pure Python; never imports Django.
"""

from __future__ import annotations

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components


def match_by_position(cat_ra, cat_dec, spec_ra, spec_dec, radius_arcsec: float = 2.0) -> np.ndarray:
    """For each catalog position, the index of the nearest spectrum within ``radius_arcsec``, else -1.

    cat_ra, cat_dec: (M,) degrees; spec_ra, spec_dec: (N,) degrees. Returns (M,) int64 indices into
    the spectra. A NaN position matches nothing and is matched by nothing. Several catalog rows may
    match one spectrum.
    """
    cat_ra, cat_dec = np.asarray(cat_ra, dtype=float), np.asarray(cat_dec, dtype=float)
    spec_ra, spec_dec = np.asarray(spec_ra, dtype=float), np.asarray(spec_dec, dtype=float)
    if cat_ra.shape != cat_dec.shape or spec_ra.shape != spec_dec.shape:
        raise ValueError(
            f"RA and Dec differ in shape: catalog {cat_ra.shape} vs {cat_dec.shape}, "
            f"spectra {spec_ra.shape} vs {spec_dec.shape}"
        )
    if radius_arcsec <= 0:
        raise ValueError(f"radius_arcsec must be positive (got {radius_arcsec})")
    matched = np.full(len(cat_ra), -1, dtype=np.int64)
    placed = np.isfinite(cat_ra) & np.isfinite(cat_dec)  # astropy refuses NaN positions
    (spectra_placed,) = np.nonzero(np.isfinite(spec_ra) & np.isfinite(spec_dec))
    if not placed.any() or len(spectra_placed) == 0:
        return matched
    catalog = SkyCoord(cat_ra[placed] * u.deg, cat_dec[placed] * u.deg)
    spectra = SkyCoord(spec_ra[spectra_placed] * u.deg, spec_dec[spectra_placed] * u.deg)
    index, separation, _ = catalog.match_to_catalog_sky(spectra)
    matched[placed] = np.where(separation.arcsec <= radius_arcsec, spectra_placed[index], -1)
    return matched


def separation_arcsec(ra1, dec1, ra2, dec2) -> np.ndarray:
    """The angular separation between positions 1 and 2, element by element, in arcsec (degrees in)."""
    one = SkyCoord(np.asarray(ra1, dtype=float) * u.deg, np.asarray(dec1, dtype=float) * u.deg)
    two = SkyCoord(np.asarray(ra2, dtype=float) * u.deg, np.asarray(dec2, dtype=float) * u.deg)
    return one.separation(two).arcsec


def position_groups(ra, dec, radius_arcsec: float = 2.0) -> np.ndarray:
    """(n,) int64 group numbers: positions within ``radius_arcsec`` of each other, directly or through a
    chain, share one (repeat observations of one galaxy); a NaN position is a group of its own."""
    ra, dec = np.asarray(ra, dtype=float), np.asarray(dec, dtype=float)
    group = np.arange(len(ra))
    (placed,) = np.nonzero(np.isfinite(ra) & np.isfinite(dec))
    if len(placed) < 2:
        return group
    sky = SkyCoord(ra[placed] * u.deg, dec[placed] * u.deg)
    first, second, _, _ = sky.search_around_sky(sky, radius_arcsec * u.arcsec)
    pairs = first < second
    links = np.ones(int(pairs.sum()), dtype=bool)
    graph = coo_matrix((links, (placed[first[pairs]], placed[second[pairs]])), shape=(len(ra), len(ra)))
    return connected_components(graph, directed=False)[1].astype(np.int64)
