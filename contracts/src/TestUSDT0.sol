// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Eip3009Token} from "./Eip3009Token.sol";

/// @notice USDT0-like test token: the EIP-712 domain of USDT0 ("USDT0", "1").
contract TestUSDT0 is Eip3009Token {
    constructor() Eip3009Token("USDT0", "USDT0", "1") {}
}
