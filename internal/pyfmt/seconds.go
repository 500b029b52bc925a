package pyfmt

import "math/bits"

// AppendUnixSeconds appends AppendFloat(b, float64(ns)/1e9): Python's
// repr of a Unix time in seconds, as aga-core's time.time() gives it.
//
// For the instants of this era (2^30 to 2^31 seconds: 2004 to 2038) the
// float's unit in the last place is always 2^-22 s, so its value is
// m / 2^22 for an integer m. Seven decimals always tell it from its
// neighbours (10^-7 / 2 < 2^-23); the fewest that do, rounded to the
// nearest, are the shortest digits strconv finds, found with one 128-bit
// product per decimal tried instead of a general digit search (about
// half the event log's float formatting: a retrieval line's timestamp).
// Anything else, and the rare value that needs a tie broken, goes to
// AppendFloat. TestAppendUnixSecondsMatchesAppendFloat holds the two
// equal.
func AppendUnixSeconds(b []byte, ns int64) []byte {
	v := float64(ns) / 1e9
	if !(v > 1<<30 && v < 1<<31) {
		return AppendFloat(b, v)
	}
	m := uint64(v * (1 << 22)) // exact: a power of two times v, an integer here
	if m&(1<<22-1) == 0 {
		return AppendFloat(b, v) // a whole second: "N.0"
	}
	// Round-tripping is monotone in the number of decimals (the nearest
	// decimal with one more digit is at least as near), so step down
	// from 7 while the next fewer still round-trips.
	q, ok := nearestDecimal(m, 7)
	if !ok {
		return AppendFloat(b, v)
	}
	d := 7
	for d > 1 {
		q1, ok := nearestDecimal(m, d-1)
		if !ok {
			break
		}
		q, d = q1, d-1
	}
	if q%10 == 0 {
		return AppendFloat(b, v) // cannot happen for a non-integer; checked, not assumed
	}
	// The digits from the last, two at a time by constant divisions (a
	// digit at a time was half of this function's time): d decimals, the
	// point, then the whole seconds, which fit 32 bits.
	var buf [24]byte
	i := len(buf)
	for ; d >= 2; d -= 2 {
		r := q % 100
		q /= 100
		i -= 2
		buf[i], buf[i+1] = digitPairs[2*r], digitPairs[2*r+1]
	}
	if d == 1 {
		i--
		buf[i] = '0' + byte(q%10)
		q /= 10
	}
	i--
	buf[i] = '.'
	n := uint32(q) // < 2^31: the range checked above
	for n >= 100 {
		r := n % 100
		n /= 100
		i -= 2
		buf[i], buf[i+1] = digitPairs[2*r], digitPairs[2*r+1]
	}
	if n >= 10 {
		i -= 2
		buf[i], buf[i+1] = digitPairs[2*n], digitPairs[2*n+1]
	} else {
		i--
		buf[i] = '0' + byte(n)
	}
	return append(b, buf[i:]...)
}

// digitPairs holds "00" to "99".
const digitPairs = "00010203040506070809" +
	"10111213141516171819" +
	"20212223242526272829" +
	"30313233343536373839" +
	"40414243444546474849" +
	"50515253545556575859" +
	"60616263646566676869" +
	"70717273747576777879" +
	"80818283848586878889" +
	"90919293949596979899"

var pow10 = [...]uint64{1, 10, 100, 1000, 10000, 100000, 1000000, 10000000}

// nearestDecimal returns the nearest multiple of 10^-d to m / 2^22, as an
// integer count of them, and whether it parses back to exactly that
// float: strictly within half a unit in the last place (2^-23) of it. A
// tie between two decimals, or a decimal exactly halfway to a neighbour,
// reports false: those are left to strconv's rules.
func nearestDecimal(m uint64, d int) (uint64, bool) {
	p := pow10[d]
	hi, lo := bits.Mul64(m, p) // < 2^53 * 10^7 < 2^77
	const shift, half = 22, 1 << 21
	q := hi<<(64-shift) | lo>>shift
	r := lo & (1<<shift - 1)
	var dist uint64 // |q * 2^22 - m * p| after rounding
	switch {
	case r > half:
		q, dist = q+1, 1<<shift-r
	case r < half:
		dist = r
	default:
		return 0, false
	}
	// |q/10^d - m/2^22| < 2^-23  <=>  2 * dist < 10^d
	return q, 2*dist < p
}
