/** A point on the Earth, in decimal degrees (WGS 84, as GeoIP databases report it). */
export interface GeoPoint {
  readonly latitude: number;
  readonly longitude: number;
}

/**
 * Mean Earth radius in km (IUGG). The sphere is off by at most ~0.5 % against the
 * ellipsoid, far below what matters for "which node is nearest".
 */
export const EARTH_RADIUS_KM = 6371.0088;

const toRadians = (degrees: number): number => (degrees * Math.PI) / 180;

/**
 * Great-circle distance between two points in km, by the haversine formula (numerically
 * stable for short distances, where the spherical law of cosines loses precision).
 */
export function greatCircleDistanceKm(a: GeoPoint, b: GeoPoint): number {
  const dLat = toRadians(b.latitude - a.latitude);
  const dLon = toRadians(b.longitude - a.longitude);
  const h =
    Math.sin(dLat / 2) ** 2 +
    Math.cos(toRadians(a.latitude)) * Math.cos(toRadians(b.latitude)) * Math.sin(dLon / 2) ** 2;
  // Rounding can push h a hair above 1 for antipodal points; asin(>1) would be NaN.
  return 2 * EARTH_RADIUS_KM * Math.asin(Math.sqrt(Math.min(1, h)));
}

/** True when both coordinates are finite and inside [-90, 90] x [-180, 180]. */
export function isValidGeoPoint(point: GeoPoint): boolean {
  return (
    Number.isFinite(point.latitude) &&
    Number.isFinite(point.longitude) &&
    Math.abs(point.latitude) <= 90 &&
    Math.abs(point.longitude) <= 180
  );
}
